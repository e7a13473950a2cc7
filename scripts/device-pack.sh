#!/usr/bin/env bash
# Builds .device/: what a GPU server without Node needs to run ccekit (under 64 MiB):
#   node.xz (stripped Node binary), ccekit.mjs (esbuild bundle of the CLI and runtimes),
#   node_modules/ with the linux-x64 native parts of koffi and webgpu (dawn.node.xz).
# On the server: bash scripts/device-run.sh <ccekit args>
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device
rm -rf "$out" && mkdir -p "$out/node_modules"
npx esbuild cli/main.ts --bundle --platform=node --format=esm --target=node20 --outfile="$out/ccekit.mjs" \
  --external:webgpu --external:koffi --log-level=warning \
  --banner:js="import{createRequire as __cr}from'module';import{fileURLToPath as __fu}from'url';import{dirname as __dn}from'path';const require=__cr(import.meta.url);const __filename=__fu(import.meta.url);const __dirname=__dn(__filename);"
# The WGSL floors (bench/wgsl-floors.ts): run with CCEKIT_ENTRY=wgsl-floors.mjs bash scripts/device-run.sh
npx esbuild bench/wgsl-floors.ts --bundle --platform=node --format=esm --target=node20 --outfile="$out/wgsl-floors.mjs" \
  --external:webgpu --log-level=warning \
  --banner:js="import{createRequire as __cr}from'module';const require=__cr(import.meta.url);"
node_bin=$(command -v node)
cp "$node_bin" "$out/node" && strip "$out/node" && xz -T2 -6 "$out/node"
mkdir -p "$out/node_modules/@koromix/koffi-linux-x64/linux_x64" "$out/node_modules/webgpu/dist/linux-x64"
# koffi: its JS loader (it finds the native part in ../@koromix/koffi-linux-x64), no C++ sources.
mkdir -p "$out/node_modules/koffi/src"
cp node_modules/koffi/package.json node_modules/koffi/index.js node_modules/koffi/index.cjs node_modules/koffi/indirect.js node_modules/koffi/indirect.cjs "$out/node_modules/koffi/"
cp -r node_modules/koffi/src/koffi "$out/node_modules/koffi/src/"
find "$out/node_modules/koffi" \( -name '*.cc' -o -name '*.hh' -o -name '*.h' -o -name '*.c' -o -name '*.inc' \) -delete
cp node_modules/@koromix/koffi-linux-x64/package.json node_modules/@koromix/koffi-linux-x64/*.js "$out/node_modules/@koromix/koffi-linux-x64/"
cp node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node "$out/node_modules/@koromix/koffi-linux-x64/linux_x64/"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$out/node_modules/webgpu/"
xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$out/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
du -sh "$out"; du -a "$out" | sort -n | tail -5
