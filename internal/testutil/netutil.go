package testutil

import (
	"bufio"
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tcpListenInode returns the socket inode of the TCP listener on ip:port (IPv4),
// from /proc/net/tcp, or 0 when nothing listens there.
func tcpListenInode(ip string, port int) uint64 {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		return 0
	}
	// /proc/net/tcp prints the address as a little-endian hex word.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", v4[3], v4[2], v4[1], v4[0], port)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == want && fs[3] == "0A" { // 0A: LISTEN
			n, _ := strconv.ParseUint(fs[9], 10, 64)
			return n
		}
	}
	return 0
}

// socketOwner returns a PID that holds the socket inode, or 0.
func socketOwner(inode uint64) int {
	if inode == 0 {
		return 0
	}
	want := fmt.Sprintf("socket:[%d]", inode)
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == want {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// waitPortFree waits until nothing listens on ip:port and returns the PID that
// still holds it after timeout (-1 if unknown), or 0.
func waitPortFree(ip string, port int, timeout time.Duration) int {
	var ino uint64
	if Poll(timeout, func() bool { ino = tcpListenInode(ip, port); return ino == 0 }) {
		return 0
	}
	return cmp.Or(socketOwner(ino), -1)
}
