package mounter

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want Invocation
	}{
		{
			name: "kubelet mounter path",
			argv: []string{"/usr/local/bin/mounter", "mount", "-t", "glusterfs", "-o", "ro,log-level=ERROR", "127.0.0.2:/v0", "/var/lib/kubelet/pods/x/volumes/v"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: DefaultTimeout, Type: "glusterfs",
				Options: []string{"ro,log-level=ERROR"}, Args: []string{"127.0.0.2:/v0", "/var/lib/kubelet/pods/x/volumes/v"},
				Passthrough: []string{"-t", "glusterfs", "-o", "ro,log-level=ERROR", "127.0.0.2:/v0", "/var/lib/kubelet/pods/x/volumes/v"}},
		},
		{
			name: "global config and timeout, attached values",
			argv: []string{"mounter", "--config=/etc/x.toml", "--timeout", "3s", "mount", "-tglusterfs", "-oro", "--options=acl", "s", "d"},
			want: Invocation{Prog: "mounter", Command: CmdMount, ConfigPath: "/etc/x.toml", ConfigSet: true, Timeout: 3 * time.Second, TimeoutSet: true,
				Type: "glusterfs", Options: []string{"ro", "acl"}, Args: []string{"s", "d"},
				Passthrough: []string{"-tglusterfs", "-oro", "--options=acl", "s", "d"}},
		},
		{
			name: "timeout after mount is ours, not mount(8)'s",
			argv: []string{"mounter", "mount", "--timeout=500ms", "-t", "tmpfs", "none", "/mnt"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: 500 * time.Millisecond, TimeoutSet: true, Type: "tmpfs",
				Args: []string{"none", "/mnt"}, Passthrough: []string{"-t", "tmpfs", "none", "/mnt"}},
		},
		{
			name: "bare seconds",
			argv: []string{"mounter", "--timeout", "7", "status"},
			want: Invocation{Prog: "mounter", Command: CmdStatus, Timeout: 7 * time.Second, TimeoutSet: true},
		},
		{
			name: "clustered flags, -r and -w",
			argv: []string{"mounter", "mount", "-nvs", "-r", "-t", "glusterfs", "s", "d"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: DefaultTimeout, Type: "glusterfs",
				NoMtab: true, Verbose: true, Sloppy: true, Options: []string{"ro"}, Args: []string{"s", "d"},
				Passthrough: []string{"-nvs", "-r", "-t", "glusterfs", "s", "d"}},
		},
		{
			name: "long flags",
			argv: []string{"mounter", "mount", "--fake", "--no-mtab", "--verbose", "--sloppy", "--read-write", "--no-canonicalize", "--types", "glusterfs", "s", "d"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: DefaultTimeout, Type: "glusterfs",
				Fake: true, NoMtab: true, Verbose: true, Sloppy: true, Options: []string{"rw"}, Args: []string{"s", "d"},
				Passthrough: []string{"--fake", "--no-mtab", "--verbose", "--sloppy", "--read-write", "--no-canonicalize", "--types", "glusterfs", "s", "d"}},
		},
		{
			name: "unknown options are kept for plain mount and refused for a routed one",
			argv: []string{"mounter", "mount", "--bind", "-N", "/proc/9/ns/mnt", "a", "b"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: DefaultTimeout,
				Unsupported: []string{"--bind", "-N /proc/9/ns/mnt"}, Args: []string{"a", "b"},
				Passthrough: []string{"--bind", "-N", "/proc/9/ns/mnt", "a", "b"}},
		},
		{
			name: "double dash",
			argv: []string{"mounter", "mount", "-t", "glusterfs", "--", "-odd-source", "d"},
			want: Invocation{Prog: "mounter", Command: CmdMount, Timeout: DefaultTimeout, Type: "glusterfs",
				Args: []string{"-odd-source", "d"}, Passthrough: []string{"-t", "glusterfs", "--", "-odd-source", "d"}},
		},
		{
			name: "helper form as mount(8) calls it",
			argv: []string{"/sbin/mount.glusterfs", "127.0.0.2:/v0", "/mnt/g", "-o", "rw,acl", "-n", "-v"},
			want: Invocation{Prog: "mount.glusterfs", Command: CmdMount, Helper: true, Timeout: DefaultTimeout, Type: "glusterfs",
				Options: []string{"rw,acl"}, NoMtab: true, Verbose: true, Args: []string{"127.0.0.2:/v0", "/mnt/g"},
				Passthrough: []string{"-i", "-t", "glusterfs", "127.0.0.2:/v0", "/mnt/g", "-o", "rw,acl", "-n", "-v"}},
		},
		{
			name: "helper form with a subtype",
			argv: []string{"mount.fuse", "sshfs#h:/", "/mnt/s", "-t", "fuse.sshfs", "-s", "-f"},
			want: Invocation{Prog: "mount.fuse", Command: CmdMount, Helper: true, Timeout: DefaultTimeout, Type: "fuse.sshfs",
				Sloppy: true, Fake: true, Args: []string{"sshfs#h:/", "/mnt/s"},
				Passthrough: []string{"-i", "sshfs#h:/", "/mnt/s", "-t", "fuse.sshfs", "-s", "-f"}},
		},
		{
			name: "umount lazy",
			argv: []string{"mounter", "umount", "-l", "/mnt/g"},
			want: Invocation{Prog: "mounter", Command: CmdUmount, Timeout: DefaultTimeout, Lazy: true, Args: []string{"/mnt/g"}},
		},
		{
			name: "version command",
			argv: []string{"mounter", "version"},
			want: Invocation{Prog: "mounter", Command: CmdVersion, Timeout: DefaultTimeout},
		},
		{
			name: "help",
			argv: []string{"mounter", "--help", "mount"},
			want: Invocation{Prog: "mounter", Command: CmdHelp, Timeout: DefaultTimeout},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.argv)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.argv, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.argv, *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, argv := range [][]string{
		{"mounter"},
		{"mounter", "--config"},
		{"mounter", "--frob", "mount"},
		{"mounter", "--timeout", "-3s", "mount", "a", "b"},
		{"mounter", "--timeout", "soon", "status"},
		{"mounter", "mount", "-t"},
		{"mounter", "mount", "-o"},
		{"mounter", "status", "extra"},
		{"mounter", "umount"},
		{"mounter", "umount", "a", "b"},
		{"mounter", "umount", "-f", "a"},
		{"mounter", "remount", "a"},
		{"mount.glusterfs", "only-source"},
		{"mount.glusterfs", "a", "b", "c"},
	} {
		_, err := Parse(argv)
		var e *Error
		if !errors.As(err, &e) || e.Code != ExitUsage {
			t.Errorf("Parse(%q) = %v, want a usage error (exit %d)", argv, err, ExitUsage)
		}
	}
}

func TestOptionList(t *testing.T) {
	inv := &Invocation{Options: []string{"ro,acl", "", "log-level=ERROR,", "rw"}}
	if got, want := strings.Join(inv.OptionList(), ","), "ro,acl,log-level=ERROR,rw"; got != want {
		t.Errorf("OptionList() = %q, want %q", got, want)
	}
}

func TestMountArgv(t *testing.T) {
	tests := []struct {
		inv  Invocation
		want []string
	}{
		{
			inv:  Invocation{Type: "glusterfs", Args: []string{"h:/v", "/host/x"}},
			want: []string{"mount", "-t", "glusterfs", "--", "h:/v", "/in/x"},
		},
		{
			inv:  Invocation{Type: "glusterfs", Options: []string{"ro", "acl"}, NoMtab: true, Sloppy: true, Verbose: true, Args: []string{"h:/v", "/host/x"}},
			want: []string{"mount", "-n", "-s", "-v", "-t", "glusterfs", "-o", "ro,acl", "--", "h:/v", "/in/x"},
		},
	}
	for _, tt := range tests {
		if got := mountArgv(&tt.inv, "/in/x"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("mountArgv(%+v) = %q, want %q", tt.inv, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{usage("x"), ExitUsage},
		{failure("x"), ExitFailure},
		{system("x"), ExitSystem},
		{errors.New("plain"), ExitSystem},
		{errors.Join(errors.New("a"), failure("b")), ExitFailure},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
