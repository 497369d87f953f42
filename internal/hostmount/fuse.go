package hostmount

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// DefaultStatTimeout bounds the statfs of one FUSE mount point: a live but
// hung FUSE daemon would otherwise block the caller for ever.
const DefaultStatTimeout = 2 * time.Second

// FUSEScan is what ScanFUSE found among the FUSE mounts under the prefixes.
type FUSEScan struct {
	Dead []*mountinfo.Info // statfs failed with ENOTCONN or ECONNABORTED
	Hung []*mountinfo.Info // statfs did not return within the timeout
	Live []*mountinfo.Info // statfs answered (successfully or with another error)
}

// ScanFUSE lists the FUSE mounts (fstype "fuse", "fuse.*" or "fuseblk")
// within one of under (MountsUnder: listmount when each prefix is a mount
// point, else one read of mountinfo), and sorts them by a statfs of each
// mount point. The statfs calls run in parallel, so the whole scan takes at
// most about timeout; a goroutine stuck on a hung mount stays blocked until
// the daemon answers or the mount goes away. The prefixes themselves are
// resolved (lstat of each component): they must not lie on a FUSE mount.
func ScanFUSE(under []string, timeout time.Duration) (*FUSEScan, error) {
	mounts, err := MountsUnder(ExpandPrefixes(under), func(m *mountinfo.Info) bool { return IsFUSE(m.FSType) })
	if err != nil {
		return nil, fmt.Errorf("list the FUSE mounts under %v: %w", under, err)
	}
	return classify(mounts, timeout, statfs), nil
}

// IsFUSE reports whether fstype is a FUSE file system type: "fuse",
// "fuse.<subtype>" (fuse.glusterfs, fuse.sshfs) or "fuseblk".
func IsFUSE(fstype string) bool {
	return fstype == "fuse" || fstype == "fuseblk" || strings.HasPrefix(fstype, "fuse.")
}

// ExpandPrefixes returns the absolute prefixes cleaned, plus their resolved
// form where it differs: mountinfo shows /data/kubelet/... on a host where
// /var/lib/kubelet is a symlink to /data/kubelet.
func ExpandPrefixes(under []string) []string {
	out := resolvePrefixes(under)
	for _, p := range under {
		if c := filepath.Clean(p); filepath.IsAbs(p) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func statfs(path string) error {
	var st unix.Statfs_t
	return unix.Statfs(path, &st)
}

// classify statfs's every mount in parallel and sorts them by the answer,
// keeping mountinfo order within each class.
func classify(mounts []*mountinfo.Info, timeout time.Duration, stat func(path string) error) *FUSEScan {
	// Buffered: a goroutine that answers after the deadline must not block.
	results := make([]chan error, len(mounts))
	for i, m := range mounts {
		results[i] = make(chan error, 1)
		go func(ch chan<- error, mp string) { ch <- stat(mp) }(results[i], m.Mountpoint)
	}
	deadline, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	scan := &FUSEScan{}
	for i, m := range mounts {
		var err error
		answered := true
		select {
		case err = <-results[i]:
		case <-deadline.Done():
			select { // after the deadline, take only answers already there
			case err = <-results[i]:
			default:
				answered = false
			}
		}
		switch {
		case !answered:
			scan.Hung = append(scan.Hung, m)
		case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
			scan.Dead = append(scan.Dead, m)
		default:
			scan.Live = append(scan.Live, m)
		}
	}
	return scan
}
