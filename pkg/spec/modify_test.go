package spec

import (
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
				bind("/1", "/srv/a", "rbind", "rshared"),
				bind("/2", resolved, "rbind", "rshared"),
				bind("/3", resolved, "rbind", "rshared"),
				bind("/4", "/srv/a", "bind", "rshared"),
				bind("/5", "/c", "rbind"),
			},
			[]string{"/srv/a", resolved}},
		{"no mounts", allow, nil, nil, nil},
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

func TestModifiers(t *testing.T) {
	var order []string
	step := func(name string, err error) Modifier {
		return ModifierFunc(func(s *specs.Spec) error {
			order = append(order, name)
			s.Hostname += name
			return err
		})
	}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		ms        Modifiers
		wantOrder []string
		wantErr   error
	}{
		{"in order", Modifiers{step("a", nil), step("b", nil), step("c", nil)}, []string{"a", "b", "c"}, nil},
		{"nil entries skipped", Modifiers{nil, step("a", nil), nil, step("b", nil), nil}, []string{"a", "b"}, nil},
		{"stops at first error", Modifiers{step("a", nil), step("b", boom), step("c", nil)}, []string{"a", "b"}, boom},
		{"empty", Modifiers{}, nil, nil},
		{"nil list", nil, nil, nil},
		{"nested", Modifiers{step("a", nil), Modifiers{step("b", nil), nil, step("c", nil)}, step("d", nil)}, []string{"a", "b", "c", "d"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order = nil
			s := &specs.Spec{}
			err := tt.ms.Modify(s)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(order, tt.wantOrder) {
				t.Errorf("order = %q, want %q", order, tt.wantOrder)
			}
		})
	}
	// A Modifiers value is itself a Modifier, and so is a ModifierFunc.
	var _ Modifier = Modifiers(nil)
	var _ Modifier = ModifierFunc(nil)
	var _ Modifier = &SharedBinds{}
	var _ Modifier = RootfsPropagation("")
}

func TestModifierFunc(t *testing.T) {
	var got *specs.Spec
	want := &specs.Spec{Hostname: "h"}
	sentinel := errors.New("sentinel")
	err := ModifierFunc(func(s *specs.Spec) error { got = s; return sentinel }).Modify(want)
	if got != want || !errors.Is(err, sentinel) {
		t.Errorf("ModifierFunc.Modify passed %p and returned %v; want %p and sentinel", got, err, want)
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
