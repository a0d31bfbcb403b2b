# A stand-in for systemd's notification socket (sd_notify protocol): binds an AF_UNIX datagram socket at the
# path given, prints every datagram on one line ("|" between assignments), and closes file descriptors passed
# with a message — that is how systemd acknowledges systemd-notify's BARRIER=1, which waits for it.
import array, os, socket, sys

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("LISTENING", flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(msg.decode("utf-8", "replace").replace("\n", "|"), flush=True)
