#!/usr/bin/env bash
# Runs ccekit on a GPU server from the .device/ folder that scripts/device-pack.sh built:
#   bash scripts/device-run.sh check --device cuda
#   CCEKIT_ENTRY=wgsl-floors.mjs bash scripts/device-run.sh beauty,zvuk   (another bundled entry)
set -euo pipefail
cd "$(dirname "$0")/.."
d=.device
[ -x "$d/node" ] || { xz -dkc "$d/node.xz" > "$d/node"; chmod +x "$d/node"; }
w="$d/node_modules/webgpu/dist/linux-x64"
[ -f "$w/dawn.node" ] || xz -dkc "$w/dawn.node.xz" > "$w/dawn.node"
# Vulkan loader for Dawn (the image has the NVIDIA ICD but no loader): .gl/*.deb, see the device README.
# On the H200 image the ICD (libGLX_nvidia) also needs glvnd: download libvulkan1 with libglvnd0 libglx0 libgl1
# libegl1 libgles2 libopengl0, or vkCreateInstance finds no driver.
if [ -d .gl ] && [ ! -f /tmp/.ccekit-gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; touch /tmp/.ccekit-gl; fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
exec "$d/node" "$d/${CCEKIT_ENTRY:-ccekit.mjs}" "$@"
