package csi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// Announcement tells `mounter` on the host that a server runs and where
// its socket is. The server writes it into the state dir it shares with the
// host at start and removes it at stop; a killed server leaves it behind,
// so the host trusts it only for the mounter whose mount namespace is the
// one it names, and only while the socket answers.
type Announcement struct {
	Driver string `json:"driver"`
	// Endpoint is the socket's path as the server sees it.
	Endpoint string `json:"endpoint"`
	// PID is the server as it sees itself.
	PID int `json:"pid"`
	// MountNS is the inode of the server's mount namespace: the host finds
	// the mounter it runs in by comparing it with /proc/PID/ns/mnt of the
	// registered mounters.
	MountNS uint64    `json:"mount-ns"`
	Rule    string    `json:"rule,omitempty"`
	Started time.Time `json:"started"`
	// StartTicks is the server's start time as the kernel keeps it (field
	// 22 of /proc/self/stat, clock ticks since boot), which a wall clock
	// stepped backwards does not move: a server of the mounter registered
	// with PIDStart started at or after it. 0 means unknown.
	StartTicks uint64 `json:"start-ticks,omitempty"`
}

// AnnouncementPath is where the server of driver announces itself.
func AnnouncementPath(stateDir, driver string) string {
	return filepath.Join(stateDir, "csi", driver, "server.json")
}

// MountNSOf returns the inode of the mount namespace of process pid
// ("self" for this one).
func MountNSOf(pid string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/proc", pid, "ns", "mnt"), &st); err != nil {
		return 0, fmt.Errorf("stat the mount namespace of process %s: %w", pid, err)
	}
	return st.Ino, nil
}

// announce writes the server's announcement.
func (s *Server) announce(endpoint string) (*Announcement, error) {
	ns, err := MountNSOf("self")
	if err != nil {
		return nil, err
	}
	a := &Announcement{Driver: s.Driver, Endpoint: endpoint, PID: os.Getpid(), MountNS: ns, Rule: s.RuleName, Started: time.Now().UTC()}
	// Unknown (0) when /proc/self/stat cannot be read: readers fall back
	// to Started.
	a.StartTicks, _ = registry.ProcStart(os.Getpid())
	if err := mountrec.WriteJSON(AnnouncementPath(s.Config.StateDir, s.Driver), a); err != nil {
		return nil, fmt.Errorf("announce the server to the host: %w", err)
	}
	return a, nil
}

// unannounce removes the announcement if it still is a's: a newer server
// of the driver may have replaced it.
func (s *Server) unannounce(a *Announcement) error {
	path := AnnouncementPath(s.Config.StateDir, s.Driver)
	cur, err := mountrec.ReadJSON[Announcement](path)
	if err != nil || cur.PID != a.PID || cur.MountNS != a.MountNS || !cur.Started.Equal(a.Started) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the announcement %s: %w", path, err)
	}
	return nil
}

// Announcements returns the announcements of every driver under stateDir,
// and apart the errors of those that cannot be read.
func Announcements(stateDir string) ([]*Announcement, []error) {
	files, err := filepath.Glob(AnnouncementPath(stateDir, "*"))
	if err != nil {
		return nil, []error{err}
	}
	return mountrec.ReadFiles[Announcement](files, nil)
}
