package csi

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestListenSocketAnswersOnceItAppears: the socket's name appears only
// once it listens, as a rename into place, so a client woken by the file
// (kubelet's plugin watcher) is never refused.
func TestListenSocketAnswersOnceItAppears(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	for i := 0; i < 20; i++ {
		l, path, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatal(err)
		}
		if path != sock {
			t.Fatalf("Listen returned %s, want %s", path, sock)
		}
		var saw uint32
		for saw == 0 {
			for _, ev := range readInotify(t, fd) {
				if ev.name != "csi.sock" {
					continue
				}
				if ev.mask&unix.IN_CREATE != 0 {
					t.Fatalf("run %d: %s was created in place, before it listened", i, sock)
				}
				saw = ev.mask
			}
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("run %d: dial as soon as %s appeared: %v", i, sock, err)
		}
		c.Close()
		l.Close()
		if err := removeSocket(sock); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Errorf("Listen left %v behind", m)
	}
}

type inotifyEvent struct {
	mask uint32
	name string
}

// readInotify reads one batch of events from fd.
func readInotify(t *testing.T, fd int) []inotifyEvent {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	var evs []inotifyEvent
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(raw.Len)]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		evs = append(evs, inotifyEvent{raw.Mask, string(name)})
		off += unix.SizeofInotifyEvent + int(raw.Len)
	}
	return evs
}

// TestListenSharedDirectory: servers that start at once in one directory
// (several drivers in kubelet's registration directory, each server PID 1
// of its own container) do not take each other's private names.
func TestListenSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			sock := filepath.Join(dir, fmt.Sprintf("driver-%d.sock", i))
			l, _, err := Listen("unix://" + sock)
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
