package mounter

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// TypeMatches reports whether a mount of fstype (as mountinfo shows it) is
// what `mount -t want` makes: want itself, or fuse.want for a FUSE file
// system whose helper sets the subtype (glusterfs shows as fuse.glusterfs).
func TypeMatches(fstype, want string) bool {
	return fstype == want || fstype == "fuse."+want
}

// typeNames says which types TypeMatches accepts, for messages.
func typeNames(want string) string {
	if strings.HasPrefix(want, "fuse.") {
		return want
	}
	return want + " or fuse." + want
}

// newMount returns the first mount of ms not in before (by mount ID: a
// stack at one place holds a few) whose type matches want, and the other
// new mounts.
func newMount(ms, before []*mountinfo.Info, want string) (found *mountinfo.Info, others []*mountinfo.Info) {
	for _, m := range ms {
		if slices.ContainsFunc(before, func(b *mountinfo.Info) bool { return b.ID == m.ID }) {
			continue
		}
		if found == nil && TypeMatches(m.FSType, want) {
			found = m
			continue
		}
		others = append(others, m)
	}
	return found, others
}

// poll intervals: the propagation of a mount is synchronous with mount(2),
// so the mount is nearly always there at the first read; back off from 1 ms
// to 50 ms for a slow helper.
const (
	pollFirst = time.Millisecond
	pollMax   = 50 * time.Millisecond
)

// waitForMount polls the host's mounts at target until a new mount (not in before)
// of type want appears at target, or timeout passes. On timeout the error
// says what was found instead.
func waitForMount(target, want string, before []*mountinfo.Info, timeout time.Duration) (*mountinfo.Info, error) {
	deadline := time.Now().Add(timeout)
	wait := pollFirst
	for {
		// statmount(2) of the stack at target: no stat through the mounts (a
		// dead FUSE mount would fail it, a hung one block it), and the new
		// mount need not be on top of the stack.
		ms, err := hostmount.MountsAt(target)
		if err != nil {
			return nil, err
		}
		found, others := newMount(ms, before, want)
		if found != nil {
			return found, nil
		}
		if time.Now().After(deadline) {
			if len(others) > 0 {
				return nil, fmt.Errorf("a mount of another type appeared at %s (%s), not %s", target, joinEach(others, "; ", func(m *mountinfo.Info) string { return m.FSType + " from " + m.Source }), typeNames(want))
			}
			return nil, fmt.Errorf("no new mount of type %s appeared at %s within %v", typeNames(want), target, timeout)
		}
		time.Sleep(wait)
		wait = min(2*wait, pollMax)
	}
}
