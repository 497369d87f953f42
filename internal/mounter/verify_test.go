package mounter

import (
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestTypeMatches(t *testing.T) {
	tests := []struct {
		fstype, want string
		ok           bool
	}{
		{"fuse.glusterfs", "glusterfs", true},
		{"glusterfs", "glusterfs", true},
		{"fuse.sshfs", "fuse.sshfs", true},
		{"nfs4", "nfs4", true},
		{"fuse", "glusterfs", false},
		{"fuse.glusterfs2", "glusterfs", false},
		{"tmpfs", "glusterfs", false},
	}
	for _, tt := range tests {
		if got := TypeMatches(tt.fstype, tt.want); got != tt.ok {
			t.Errorf("TypeMatches(%q, %q) = %v, want %v", tt.fstype, tt.want, got, tt.ok)
		}
	}
}

func TestNewMount(t *testing.T) {
	old := &mountinfo.Info{ID: 10, FSType: "fuse.glusterfs"} // stacked before the call
	other := &mountinfo.Info{ID: 11, FSType: "tmpfs"}
	fresh := &mountinfo.Info{ID: 12, FSType: "fuse.glusterfs"}
	before := mountIDs([]*mountinfo.Info{old})

	if found, _ := newMount([]*mountinfo.Info{old}, before, "glusterfs"); found != nil {
		t.Errorf("a mount that was there before counts as new: %+v", found)
	}
	found, others := newMount([]*mountinfo.Info{old, other, fresh}, before, "glusterfs")
	if found != fresh || len(others) != 1 || others[0] != other {
		t.Errorf("newMount = %+v, %+v; want the fresh glusterfs mount and the tmpfs as other", found, others)
	}
}

func TestTypeNames(t *testing.T) {
	if got := typeNames("glusterfs"); got != "glusterfs or fuse.glusterfs" {
		t.Errorf("typeNames(glusterfs) = %q", got)
	}
	if got := typeNames("fuse.sshfs"); got != "fuse.sshfs" {
		t.Errorf("typeNames(fuse.sshfs) = %q", got)
	}
}
