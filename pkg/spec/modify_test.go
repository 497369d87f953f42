package spec

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func bind(dst, src string, opts ...string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

func TestSharedBinds(t *testing.T) {
	const (
		kubelet  = "/var/lib/kubelet"
		resolved = "/srv/kubelet"
	)
	allow := map[string]string{kubelet: kubelet}
	tests := []struct {
		name        string
		allow       map[string]string
		mounts      []specs.Mount
		want        []specs.Mount
		wantSources []string
	}{
		{"rprivate replaced, order kept", allow,
			[]specs.Mount{bind("/k", kubelet, "rbind", "rprivate", "nosuid")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "nosuid", "rshared")},
			[]string{kubelet}},
		{"private replaced", allow,
			[]specs.Mount{bind("/k", kubelet, "private", "bind", "ro")},
			[]specs.Mount{bind("/k", kubelet, "bind", "ro", "rshared")},
			[]string{kubelet}},
		{"slave replaced", allow,
			[]specs.Mount{bind("/k", kubelet, "rbind", "slave")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"rslave replaced", allow,
			[]specs.Mount{bind("/k", kubelet, "rslave", "rbind")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"shared replaced", allow,
			[]specs.Mount{bind("/k", kubelet, "rbind", "shared")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"unbindable replaced", allow,
			[]specs.Mount{bind("/k", kubelet, "runbindable", "rbind", "unbindable")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"several propagation options become one", allow,
			[]specs.Mount{bind("/k", kubelet, "rprivate", "rbind", "rshared", "slave", "rw")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rw", "rshared")},
			[]string{kubelet}},
		{"already rshared stays one", allow,
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"no propagation option (containerd)", allow,
			[]specs.Mount{bind("/k", kubelet, "rbind")},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"type bind, no options", allow,
			[]specs.Mount{bind("/k", kubelet)},
			[]specs.Mount{bind("/k", kubelet, "rshared")},
			[]string{kubelet}},
		{"options rbind, no type", allow,
			[]specs.Mount{{Destination: "/k", Source: kubelet, Options: []string{"rbind", "rprivate"}}},
			[]specs.Mount{{Destination: "/k", Source: kubelet, Options: []string{"rbind", "rshared"}}},
			[]string{kubelet}},
		{"options bind, type none", allow,
			[]specs.Mount{{Destination: "/k", Type: "none", Source: kubelet, Options: []string{"bind", "private"}}},
			[]specs.Mount{{Destination: "/k", Type: "none", Source: kubelet, Options: []string{"bind", "rshared"}}},
			[]string{kubelet}},
		{"not allowlisted untouched", allow,
			[]specs.Mount{bind("/etc/hosts", "/var/lib/docker/hosts", "rbind", "rprivate")},
			[]specs.Mount{bind("/etc/hosts", "/var/lib/docker/hosts", "rbind", "rprivate")},
			nil},
		{"non-bind with allowlisted source untouched", allow,
			[]specs.Mount{{Destination: "/k", Type: "tmpfs", Source: kubelet, Options: []string{"rprivate", "nosuid"}}},
			[]specs.Mount{{Destination: "/k", Type: "tmpfs", Source: kubelet, Options: []string{"rprivate", "nosuid"}}},
			nil},
		{"rbind-like option text is not rbind", allow,
			[]specs.Mount{{Destination: "/k", Type: "overlay", Source: kubelet, Options: []string{"rbind=1", "rprivate"}}},
			[]specs.Mount{{Destination: "/k", Type: "overlay", Source: kubelet, Options: []string{"rbind=1", "rprivate"}}},
			nil},
		{"source replaced by resolved path", map[string]string{kubelet: resolved},
			[]specs.Mount{bind("/k", kubelet, "rbind", "rprivate")},
			[]specs.Mount{bind("/k", resolved, "rbind", "rshared")},
			[]string{resolved}},
		{"sources unique, in order", map[string]string{kubelet: resolved, "/a": "/srv/a", "/b": resolved},
			[]specs.Mount{
				bind("/1", "/a", "rbind"),
				bind("/2", kubelet, "rbind"),
				bind("/3", "/b", "rbind"),
				bind("/4", "/a", "bind"),
				bind("/5", "/c", "rbind"),
			},
			[]specs.Mount{
				bind("/5", "/c", "rbind"),
				bind("/1", "/srv/a", "rbind", "rshared"),
				bind("/2", resolved, "rbind", "rshared"),
				bind("/3", resolved, "rbind", "rshared"),
				bind("/4", "/srv/a", "bind", "rshared"),
			},
			[]string{"/srv/a", resolved}},
		{"no mounts", allow, nil, nil, nil},
		// runc makes the mounts in spec order: a mount made after a shared
		// bind, below it, would land on the host.
		{"allowlisted binds move after every other mount (podman's cgroup)", allow,
			[]specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				bind("/var/lib/kubelet", kubelet, "rw", "rprivate", "rbind"),
				{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"rprivate", "ro"}},
			},
			[]specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"rprivate", "ro"}},
				bind("/var/lib/kubelet", kubelet, "rw", "rbind", "rshared"),
			},
			[]string{kubelet}},
		{"nested bind of the same directory dropped (CSI: kubelet and kubelet/plugins)",
			map[string]string{kubelet: kubelet, kubelet + "/plugins": kubelet + "/plugins"},
			[]specs.Mount{
				bind(kubelet+"/plugins", kubelet+"/plugins", "rbind", "rprivate"),
				bind(kubelet, kubelet, "rbind", "rprivate"),
				bind("/csi", kubelet+"/plugins", "rbind", "rprivate"),
			},
			[]specs.Mount{
				bind(kubelet, kubelet, "rbind", "rshared"),
				bind("/csi", kubelet+"/plugins", "rbind", "rshared"),
			},
			[]string{kubelet, kubelet + "/plugins"}},
		{"stacked bind of the same directory dropped", allow,
			[]specs.Mount{bind("/host", kubelet, "rbind"), bind("/host/", kubelet, "rw", "rbind", "rslave")},
			[]specs.Mount{bind("/host", kubelet, "rbind", "rshared")},
			[]string{kubelet}},
		{"allowlisted file bind below /dev (kubelet's termination log)", map[string]string{kubelet + "/pods/u/c": kubelet + "/pods/u/c"},
			[]specs.Mount{{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"}, bind("/dev/termination-log", kubelet+"/pods/u/c", "rbind", "rprivate")},
			[]specs.Mount{{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"}, bind("/dev/termination-log", kubelet+"/pods/u/c", "rbind", "rshared")},
			[]string{kubelet + "/pods/u/c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.mounts)
			origOpts := make([][]string, len(orig))
			for i := range orig {
				origOpts[i] = slices.Clone(orig[i].Options)
			}
			s := &specs.Spec{Mounts: tt.mounts}
			sb := &SharedBinds{Resolver: &mapResolver{allow: tt.allow}}
			if err := sb.Modify(s); err != nil {
				t.Fatalf("Modify: %v", err)
			}
			if !reflect.DeepEqual(s.Mounts, tt.want) {
				t.Errorf("mounts:\n got %+v\nwant %+v", s.Mounts, tt.want)
			}
			if !reflect.DeepEqual(sb.Sources, tt.wantSources) {
				t.Errorf("Sources = %q, want %q", sb.Sources, tt.wantSources)
			}
			// The option slices the caller holds are not rewritten in place.
			for i := range orig {
				if !slices.Equal(orig[i].Options, origOpts[i]) {
					t.Errorf("mount %d: caller's option slice changed to %q", i, orig[i].Options)
				}
			}
		})
	}
}

// TestSharedBindsRefusesMountsBelow: whatever runc would mount at or below
// the destination of an allowlisted bind after making it rshared lands on
// the host, again on every start; such a spec is refused and left as it was.
func TestSharedBindsRefusesMountsBelow(t *testing.T) {
	const k = "/var/lib/kubelet"
	allow := map[string]string{k: k, k + "/d": k + "/d", k + "/e": k + "/e"}
	tmpfs := func(dst string) specs.Mount { return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs"} }
	const below = `runc would mount below a shared bind`
	tests := []struct {
		name    string
		mounts  []specs.Mount
		edit    func(*specs.Spec)
		pattern string
	}{
		{"tmpfs below", []specs.Mount{bind("/host", k, "rbind"), tmpfs("/host/d")},
			nil, `^mount tmpfs \(tmpfs\) at /host/d: ` + below + ` /var/lib/kubelet -> /host; runc would make it on the host, on every start: mount it elsewhere$`},
		{"tmpfs stacked on the destination", []specs.Mount{bind("/host", k, "rbind"), tmpfs("/host")},
			nil, `^mount tmpfs \(tmpfs\) at /host: ` + below},
		{"tmpfs before the bind, at its destination", []specs.Mount{tmpfs("/host"), bind("/host", k, "rbind")},
			nil, `^mount tmpfs \(tmpfs\) at /host: ` + below},
		{"bind of another host path below", []specs.Mount{bind("/host", k, "rbind"), bind("/host/x", "/etc", "rbind", "rprivate")},
			nil, `^mount /etc \(bind\) at /host/x: ` + below},
		{"nested allowlisted bind of another directory", []specs.Mount{bind("/host", k, "rbind"), bind("/host/d", k+"/e", "rbind")},
			nil, `^bind mount /var/lib/kubelet/e -> /host/d: ` + below + ` /var/lib/kubelet -> /host and shows another directory there`},
		{"overlapping allowlisted binds at one destination", []specs.Mount{bind("/host", k+"/d", "rbind"), bind("/host", k+"/e", "rbind")},
			nil, `^bind mount /var/lib/kubelet/e -> /host: ` + below + ` /var/lib/kubelet/d -> /host and shows another directory`},
		{"nested below a non-recursive bind", []specs.Mount{bind("/host", k, "bind"), bind("/host/d", k+"/d", "rbind")},
			nil, `^bind mount /var/lib/kubelet/d -> /host/d: ` + below + ` /var/lib/kubelet -> /host, which is not recursive; make the outer bind rbind`},
		{"nested read-only below read-write", []specs.Mount{bind("/host", k, "rbind"), bind("/host/d", k+"/d", "rbind", "ro")},
			nil, `^bind mount /var/lib/kubelet/d -> /host/d: ` + below + ` /var/lib/kubelet -> /host with other options \(\[ro\], not \[\]\)`},
		{"masked path below", []specs.Mount{bind("/proc/x", k, "rbind")},
			func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"/proc/kcore", "/proc/x/y"} },
			`^linux.maskedPaths entry /proc/x/y: ` + below + ` /var/lib/kubelet -> /proc/x; runc would mount over it on the host: remove the entry$`},
		{"read-only path at the destination", []specs.Mount{bind("/sys/k", k, "rbind")},
			func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"/sys/k/"} },
			`^linux.readonlyPaths entry /sys/k/: ` + below},
		{"bind at /dev", []specs.Mount{bind("/dev", k, "rbind")},
			nil, `^bind mount /var/lib/kubelet -> /dev: ` + below + `: runc makes /dev/console there after the spec's mounts`},
		{"bind at /", []specs.Mount{bind("/", k, "rbind")},
			nil, `^bind mount /var/lib/kubelet -> /: ` + below},
		{"bind over a device of the spec", []specs.Mount{bind("/srv", k, "rbind")},
			func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/srv/fuse"}} },
			`^bind mount /var/lib/kubelet -> /srv: ` + below + `: runc makes /srv/fuse there`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &specs.Spec{Mounts: tt.mounts, Linux: &specs.Linux{}}
			if tt.edit != nil {
				tt.edit(s)
			}
			before := typedJSON(t, s)
			sb := &SharedBinds{Resolver: &mapResolver{allow: allow}}
			err := sb.Modify(s)
			wantErr(t, err, tt.pattern)
			if !errors.Is(err, ErrBelowSharedBind) {
				t.Errorf("errors.Is(%v, ErrBelowSharedBind) = false", err)
			}
			if after := typedJSON(t, s); after != before {
				t.Errorf("a refused spec changed:\n %s\n %s", before, after)
			}
		})
	}
}

// TestEngineMountersRewrite: every captured engine mounter is accepted, its
// kubelet bind is last and rshared, and no other mount is left without a
// propagation option.
func TestEngineMountersRewrite(t *testing.T) {
	for _, name := range []string{engDockerMounter, engContainerd, engPodman} {
		t.Run(name, func(t *testing.T) {
			d := parseEngine(t, name)
			before := slices.Clone(d.Spec.Mounts)
			res := &mapResolver{allow: map[string]string{hostSource: hostSource}}
			if err := Apply(d.Spec, (&SharedBinds{Resolver: res}).Modify, UnlistedPropagation("rslave").Modify); err != nil {
				t.Fatal(err)
			}
			ms := d.Spec.Mounts
			if len(ms) != len(before) {
				t.Fatalf("%d mounts became %d", len(before), len(ms))
			}
			last := ms[len(ms)-1]
			if last.Source != hostSource || !slices.Contains(last.Options, "rshared") {
				t.Errorf("last mount = %+v, want the rshared kubelet bind", last)
			}
			for _, m := range ms[:len(ms)-1] {
				n := 0
				for _, o := range m.Options {
					if slices.Contains(propagationOptions, o) {
						n++
					}
				}
				if n != 1 || slices.Contains(m.Options, "rshared") {
					t.Errorf("mount %s: options %v, want exactly one propagation option, not rshared", m.Destination, m.Options)
				}
			}
		})
	}
}

func TestUnlistedPropagation(t *testing.T) {
	s := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid"}},
		{Destination: "/proc", Type: "proc", Source: "proc"},
		bind("/etc/hosts", "/x/hosts", "rbind", "rprivate"),
		bind("/k", "/k", "rbind", "rshared"),
		bind("/s", "/s", "slave"),
	}}
	opts := s.Mounts[0].Options
	if err := UnlistedPropagation("rslave").Modify(s); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"ro", "nosuid", "rslave"}, {"rslave"}, {"rbind", "rprivate"}, {"rbind", "rshared"}, {"slave"}}
	for i, m := range s.Mounts {
		if !slices.Equal(m.Options, want[i]) {
			t.Errorf("mount %s: options %v, want %v", m.Destination, m.Options, want[i])
		}
	}
	if !slices.Equal(opts, []string{"ro", "nosuid"}) {
		t.Errorf("the caller's option slice changed to %v", opts)
	}
}

func TestStagedBinds(t *testing.T) {
	s := &specs.Spec{Mounts: []specs.Mount{
		bind("/a", "/k/a", "rbind", "rshared"),
		bind("/b", "/k/a", "bind", "rshared"),
		{Destination: "/t", Type: "tmpfs", Source: "/k/a"},
		bind("/c", "/k/c", "rbind", "rshared"),
	}}
	if err := (StagedBinds{"/k/a": "/run/s/id/0", "/k/c": "/run/s/id/1"}).Modify(s); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Source)
	}
	if want := []string{"/run/s/id/0", "/run/s/id/0", "/k/a", "/run/s/id/1"}; !slices.Equal(got, want) {
		t.Errorf("sources = %q, want %q", got, want)
	}
	if want := map[string]string{"/run/s/id/0": "/k/a", "/run/s/id/1": "/k/c"}; !reflect.DeepEqual(StagedSources(s), want) {
		t.Errorf("StagedSources = %v, want %v", StagedSources(s), want)
	}
	binds, err := AllowlistedBinds(s, prefixResolver("/k"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Bind{{"/k/a", "/a", "/run/s/id/0"}, {"/k/a", "/b", "/run/s/id/0"}, {"/k/c", "/c", "/run/s/id/1"}}
	if !slices.Equal(binds, want) {
		t.Errorf("AllowlistedBinds = %+v, want %+v", binds, want)
	}
}

func TestSharedBindsAsksOnlyAboutBinds(t *testing.T) {
	s := parseEngine(t, engPodman).Spec
	r := &mapResolver{}
	if err := (&SharedBinds{Resolver: r}).Modify(s); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range s.Mounts {
		if IsBind(&s.Mounts[i]) {
			want = append(want, s.Mounts[i].Source)
		}
	}
	if len(want) != 6 || !slices.Equal(r.asked, want) {
		t.Errorf("resolver asked about %q, want the 6 bind sources %q", r.asked, want)
	}
}

func TestSharedBindsResolverError(t *testing.T) {
	errOutside := errors.New("resolves outside the allowlist")
	wrapped := &wrapErr{ErrUnsafeSource}
	tests := []struct {
		name    string
		errs    map[string]error
		is      error
		pattern string
	}{
		{"plain error", map[string]error{"/var/lib/kubelet/evil": errOutside}, errOutside,
			`^bind mount /var/lib/kubelet/evil -> /data: resolves outside the allowlist$`},
		{"ErrUnsafeSource", map[string]error{"/var/lib/kubelet/evil": wrapped}, ErrUnsafeSource,
			`^bind mount /var/lib/kubelet/evil -> /data: .*unsafe bind source`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &specs.Spec{Mounts: []specs.Mount{
				bind("/ok", "/var/lib/kubelet", "rbind"),
				bind("/data", "/var/lib/kubelet/evil", "rbind", "rprivate"),
			}}
			sb := &SharedBinds{Resolver: &mapResolver{allow: map[string]string{"/var/lib/kubelet": "/var/lib/kubelet"}, errs: tt.errs}}
			err := sb.Modify(s)
			wantErr(t, err, tt.pattern)
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if got := s.Mounts[1].Options; !slices.Equal(got, []string{"rbind", "rprivate"}) {
				t.Errorf("refused mount changed: %q", got)
			}
		})
	}
}

type wrapErr struct{ err error }

func (e *wrapErr) Error() string { return "symlink escapes: " + e.err.Error() }
func (e *wrapErr) Unwrap() error { return e.err }

func TestRootfsPropagation(t *testing.T) {
	s := &specs.Spec{}
	if err := RootfsPropagation("rshared").Modify(s); err != nil {
		t.Fatal(err)
	}
	if s.Linux == nil || s.Linux.RootfsPropagation != "rshared" {
		t.Fatalf("nil linux: got %+v", s.Linux)
	}

	s = parseEngine(t, engDockerMounter).Spec
	before := typedJSON(t, s.Linux.Namespaces) + typedJSON(t, s.Linux.Resources) + typedJSON(t, s.Linux.Seccomp)
	if err := RootfsPropagation("rshared").Modify(s); err != nil {
		t.Fatal(err)
	}
	if s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rootfsPropagation = %q", s.Linux.RootfsPropagation)
	}
	if after := typedJSON(t, s.Linux.Namespaces) + typedJSON(t, s.Linux.Resources) + typedJSON(t, s.Linux.Seccomp); after != before {
		t.Error("RootfsPropagation changed other linux fields")
	}
	s.Linux.RootfsPropagation = "rslave"
	if err := RootfsPropagation("shared").Modify(s); err != nil || s.Linux.RootfsPropagation != "shared" {
		t.Errorf("overwrite: %q, %v", s.Linux.RootfsPropagation, err)
	}
}

func TestApply(t *testing.T) {
	var order []string
	step := func(name string, err error) Modifier {
		return func(s *specs.Spec) error {
			order = append(order, name)
			s.Hostname += name
			return err
		}
	}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		ms        []Modifier
		wantOrder []string
		wantErr   error
	}{
		{"in order", []Modifier{step("a", nil), step("b", nil), step("c", nil)}, []string{"a", "b", "c"}, nil},
		{"stops at first error", []Modifier{step("a", nil), step("b", boom), step("c", nil)}, []string{"a", "b"}, boom},
		{"empty", []Modifier{}, nil, nil},
		{"nil list", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order = nil
			s := &specs.Spec{}
			err := Apply(s, tt.ms...)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(order, tt.wantOrder) {
				t.Errorf("order = %q, want %q", order, tt.wantOrder)
			}
		})
	}
}

func TestIsBind(t *testing.T) {
	tests := []struct {
		m    specs.Mount
		want bool
	}{
		{specs.Mount{Type: "bind"}, true},
		{specs.Mount{Type: "none", Options: []string{"bind"}}, true},
		{specs.Mount{Options: []string{"ro", "rbind"}}, true},
		{specs.Mount{Type: "tmpfs", Options: []string{"nosuid"}}, false},
		{specs.Mount{Type: "Bind"}, false},
		{specs.Mount{Type: "overlay", Options: []string{"lowerdir=/bind"}}, false},
		{specs.Mount{}, false},
	}
	for _, tt := range tests {
		if got := IsBind(&tt.m); got != tt.want {
			t.Errorf("IsBind(%+v) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestAllowlistedBinds(t *testing.T) {
	m := func(src, dst string, typ string, opts ...string) specs.Mount {
		return specs.Mount{Source: src, Destination: dst, Type: typ, Options: opts}
	}
	for _, tc := range []struct {
		name    string
		mounts  []specs.Mount
		want    []Bind
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"only binds under the prefix, in spec order", []specs.Mount{
			m("proc", "/proc", "proc"),
			m("/k/a", "/a", "bind", "rbind"),
			m("/other", "/o", "bind", "rbind"),
			m("/k/b", "b/../c/", "", "bind"), // no type, relative destination
			m("/k", "/k-tmpfs", "tmpfs"),
			m("/k/d", "", "bind", "rbind"), // no destination: runc refuses it
		}, []Bind{{Source: "/K/A", Destination: "/a"}, {Source: "/K/B", Destination: "/c"}}, ""},
		{"an unsafe source stops it and is named", []specs.Mount{
			m("/k/a", "/a", "bind"),
			m("/k/evil", "/e", "bind"),
		}, nil, "bind mount /k/evil -> /e: escapes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &mapResolver{
				allow: map[string]string{"/k/a": "/K/A", "/k/b": "/K/B", "/k": "/K", "/k/d": "/K/D"},
				errs:  map[string]error{"/k/evil": errors.New("escapes")},
			}
			got, err := AllowlistedBinds(&specs.Spec{Mounts: tc.mounts}, r)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("AllowlistedBinds = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if s := (Bind{Source: "/k", Destination: "/k"}).String(); s != "/k" {
		t.Errorf("String of a same-path bind = %q", s)
	}
	if s := (Bind{Source: "/k", Destination: "/data"}).String(); s != "/k (at /data inside)" {
		t.Errorf("String = %q", s)
	}
}

// checkRewrittenMounts checks what SharedBinds made of before: the mounts r
// does not allowlist, unchanged and in order, then the allowlisted binds in
// order, each rshared with its resolved source; an allowlisted bind may be
// missing only where a kept one's destination covers its own.
func checkRewrittenMounts(t testing.TB, before, after []specs.Mount, r SourceResolver) {
	t.Helper()
	var others, binds []specs.Mount
	for _, m := range before {
		resolved, ok, _ := r.ResolveSource(m.Source)
		if !ok || !IsBind(&m) {
			others = append(others, m)
			continue
		}
		m.Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return slices.Contains(propagationOptions, o)
		}), "rshared")
		m.Source = resolved
		binds = append(binds, m)
	}
	if len(after) < len(others) {
		t.Fatalf("%d mounts became %d, fewer than the %d not allowlisted", len(before), len(after), len(others))
	}
	for i, want := range others {
		if b, a := typedJSON(t, want), typedJSON(t, after[i]); b != a {
			t.Fatalf("mount %d: want %s, got %s", i, b, a)
		}
	}
	kept := after[len(others):]
	j := 0
	for _, want := range binds {
		if j < len(kept) && typedJSON(t, want) == typedJSON(t, kept[j]) {
			j++
			continue
		}
		if !slices.ContainsFunc(kept, func(k specs.Mount) bool { return within(cleanDest(want.Destination), cleanDest(k.Destination)) }) {
			t.Fatalf("allowlisted bind %s dropped, and no kept bind covers its destination (kept %s)", typedJSON(t, want), typedJSON(t, kept))
		}
	}
	if j != len(kept) {
		t.Fatalf("the mounts after the %d not allowlisted are %s, not the allowlisted binds %s in order", len(others), typedJSON(t, kept), typedJSON(t, binds))
	}
}

// inSpecOrder returns out with its mounts put back in the order of the same
// destinations in orig (SharedBinds moves the allowlisted binds to the end),
// so that a diff by index shows what changed in each mount.
func inSpecOrder(t testing.TB, orig, out []byte) []byte {
	t.Helper()
	o, _ := decodeGeneric(t, orig).(map[string]any)
	n, _ := decodeGeneric(t, out).(map[string]any)
	om, _ := o["mounts"].([]any)
	nm, _ := n["mounts"].([]any)
	dest := func(m any) any { mm, _ := m.(map[string]any); return mm["destination"] }
	var sorted []any
	for _, want := range om {
		for i, m := range nm {
			if m != nil && dest(m) == dest(want) {
				sorted, nm[i] = append(sorted, m), nil
				break
			}
		}
	}
	for _, m := range nm {
		if m != nil {
			sorted = append(sorted, m)
		}
	}
	if len(sorted) > 0 {
		n["mounts"] = sorted
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
