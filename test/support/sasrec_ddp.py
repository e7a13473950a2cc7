"""examples/sasrec/train.py with WORLD ranks on this CPU (gloo): the environment torchrun sets, ranks spawned with
torch.multiprocessing (Debian's torch 1.13 torchrun fails on its own redirects argument).

    python3 sasrec_ddp.py WORLD TRAIN_ARGS..."""
import os
import socket
import sys

import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))


def rank_main(rank, world, port, argv):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "sasrec"))
    import train

    code = train.main(argv)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    world = int(sys.argv[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(world, port, sys.argv[2:]), nprocs=world, join=True)
