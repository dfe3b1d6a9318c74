# A stand-in for systemd's notify socket: prints every datagram's lines,
# one per line, as they arrive.
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print("LISTENING", flush=True)
while True:
    data = sock.recv(65536)
    for line in data.decode().splitlines():
        if line:
            print(line, flush=True)
