package spec

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	reRefused = `^container matches mounter rule "glusterfs" but is refused: `
	reNoCap   = reRefused + `it lacks CAP_SYS_ADMIN in its bounding set; start it with --cap-add SYS_ADMIN \(or set require-privileged = false in the rule\)$`
	reMntPath = reRefused + `it joins the mount namespace /proc/1/ns/mnt by path; a mounter must get a new mount namespace$`
	reNoNS    = reRefused + `the rule allows only Kubernetes namespaces \[kube-system storage\] and the container carries no namespace annotation$`
	reWrongNS = reRefused + `Kubernetes namespace "default" is not in the rule's namespaces \[kube-system storage\]$`
	reNoMntNS = reRefused + `it has no mount namespace of its own; a mounter must get a new mount namespace \(add \{"type": "mount"\} to linux.namespaces\)$`
)

func TestCheckPolicy(t *testing.T) {
	nsCRI, nsCRIO := NamespaceAnnotations[0], NamespaceAnnotations[1]
	withoutSysAdmin := func(s *specs.Spec) {
		c := s.Process.Capabilities
		del := func(l []string) []string {
			return slices.DeleteFunc(l, func(c string) bool { return c == CapSysAdmin })
		}
		c.Bounding = del(c.Bounding)
	}
	onlyEffective := func(s *specs.Spec) {
		withoutSysAdmin(s)
		s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, CapSysAdmin)
		s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, CapSysAdmin)
	}
	annotate := func(kv ...string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			for i := 0; i < len(kv); i += 2 {
				s.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	joinMountNS := func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.MountNamespace {
				s.Linux.Namespaces[i].Path = "/proc/1/ns/mnt"
			}
		}
	}
	secondMountNS := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace, Path: "/proc/1/ns/mnt"})
	}
	noMountNS := func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.MountNamespace })
	}
	kube := []string{"kube-system", "storage"}

	tests := []struct {
		name       string
		engine     string
		privileged bool
		namespaces []string
		mutate     func(*specs.Spec)
		want       string // regexp; "" means allowed
	}{
		{"privileged podman", engPodman, true, nil, nil, ""},
		{"privileged containerd", engContainerd, true, nil, nil, ""},
		// Docker's config joins a network namespace by path: that is fine.
		{"docker network ns by path", engDockerMounter, true, nil, nil, ""},
		{"plain docker lacks SYS_ADMIN", engDockerPlain, true, nil, nil, reNoCap},
		{"SYS_ADMIN removed from bounding", engPodman, true, nil, withoutSysAdmin, reNoCap},
		{"SYS_ADMIN only effective/permitted", engPodman, true, nil, onlyEffective, reNoCap},
		{"require-privileged false", engDockerPlain, false, nil, nil, ""},
		{"nil process", engPodman, true, nil, func(s *specs.Spec) { s.Process = nil }, reNoCap},
		{"nil capabilities", engPodman, true, nil, func(s *specs.Spec) { s.Process.Capabilities = nil }, reNoCap},
		{"nil process, not required", engPodman, false, nil, func(s *specs.Spec) { s.Process = nil }, ""},
		{"nil capabilities, not required", engPodman, false, nil, func(s *specs.Spec) { s.Process.Capabilities = nil }, ""},

		{"namespace via containerd CRI", engPodman, true, kube, annotate(nsCRI, "kube-system"), ""},
		{"namespace via CRI-O", engPodman, true, kube, annotate(nsCRIO, "storage"), ""},
		{"namespace missing", engPodman, true, kube, nil, reNoNS},
		{"namespace empty value", engPodman, true, kube, annotate(nsCRI, ""), reNoNS},
		{"namespace wrong (CRI)", engPodman, true, kube, annotate(nsCRI, "default"), reWrongNS},
		{"namespace wrong (CRI-O)", engPodman, true, kube, annotate(nsCRIO, "default"), reWrongNS},
		{"namespace case differs", engPodman, true, kube, annotate(nsCRI, "Kube-System"), `Kubernetes namespace "Kube-System" is not in`},
		{"namespace ok but not privileged", engDockerPlain, true, kube, annotate(nsCRI, "kube-system"), reNoCap},
		{"no allowlist ignores namespace", engPodman, true, nil, annotate(nsCRI, "default"), ""},

		{"mount ns by path", engPodman, true, nil, joinMountNS, reMntPath},
		{"mount ns by path, not required", engPodman, false, nil, joinMountNS, reMntPath},
		{"mount ns by path, plain docker not required", engDockerPlain, false, nil, joinMountNS, reMntPath},
		{"second mount ns entry with path", engContainerd, true, nil, secondMountNS, reMntPath},
		{"mount ns by path, allowed namespace", engPodman, true, kube, func(s *specs.Spec) { joinMountNS(s); annotate(nsCRI, "kube-system")(s) }, reMntPath},
		{"nil linux", engPodman, true, nil, func(s *specs.Spec) { s.Linux = nil }, reNoMntNS},
		{"no mount namespace entry", engPodman, true, nil, noMountNS, reNoMntNS},
		{"no mount namespace entry, not required", engDockerPlain, false, nil, noMountNS, reNoMntNS},
		{"no namespaces at all", engContainerd, true, nil, func(s *specs.Spec) { s.Linux.Namespaces = nil }, reNoMntNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parseEngine(t, tt.engine).Spec
			if tt.mutate != nil {
				tt.mutate(s)
			}
			r := &Rule{Name: "glusterfs", RequirePrivileged: tt.privileged, Namespaces: tt.namespaces}
			err := CheckPolicy(r, s)
			wantErr(t, err, tt.want)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Errorf("errors.Is(%v, ErrPolicy) = false", err)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Rule != "glusterfs" || pe.Reason == "" {
				t.Errorf("error %#v is not a *PolicyError for rule glusterfs", err)
			}
		})
	}
}

// TestCheckPolicyConflictingNamespaces: the two namespace annotations come
// from different engines, so on each engine the other key is not the
// engine's own: CRI-O copies a container's annotations and labels into the
// spec, containerd copies allowlisted pod annotations. A spec that carries
// both with different values must not pass the allowlist on the strength of
// whichever key is consulted first.
//
// BUG (fails today): Namespace returns the containerd key first, so a pod in
// "default" on CRI-O (io.kubernetes.pod.namespace=default) that adds
// io.kubernetes.cri.sandbox-namespace=kube-system passes.
func TestCheckPolicyConflictingNamespaces(t *testing.T) {
	for _, order := range [][2]string{{"kube-system", "default"}, {"default", "kube-system"}} {
		s := parseEngine(t, engPodman).Spec
		s.Annotations[NamespaceAnnotations[0]] = order[0]
		s.Annotations[NamespaceAnnotations[1]] = order[1]
		r := &Rule{Name: "glusterfs", RequirePrivileged: true, Namespaces: []string{"kube-system"}}
		if err := CheckPolicy(r, s); !errors.Is(err, ErrPolicy) {
			t.Errorf("namespace annotations %s=%q and %s=%q disagree: CheckPolicy = %v, want a refusal",
				NamespaceAnnotations[0], order[0], NamespaceAnnotations[1], order[1], err)
		}
	}
}

func TestNamespaceAndContainerName(t *testing.T) {
	tests := []struct {
		ann      map[string]string
		ns, name string
		nsOK     bool
		nameOK   bool
	}{
		{nil, "", "", false, false},
		{map[string]string{NamespaceAnnotations[0]: "a", ContainerNameAnnotations[0]: "c"}, "a", "c", true, true},
		{map[string]string{NamespaceAnnotations[1]: "b", ContainerNameAnnotations[1]: "d"}, "b", "d", true, true},
		{map[string]string{NamespaceAnnotations[0]: "", NamespaceAnnotations[1]: "b"}, "b", "", true, false},
	}
	for _, tt := range tests {
		s := &specs.Spec{Annotations: tt.ann}
		if ns, ok := Namespace(s); ns != tt.ns || ok != tt.nsOK {
			t.Errorf("Namespace(%v) = %q, %v; want %q, %v", tt.ann, ns, ok, tt.ns, tt.nsOK)
		}
		if n, ok := ContainerName(s); n != tt.name || ok != tt.nameOK {
			t.Errorf("ContainerName(%v) = %q, %v; want %q, %v", tt.ann, n, ok, tt.name, tt.nameOK)
		}
	}
}

func TestRootPath(t *testing.T) {
	for _, tc := range []struct {
		root   *specs.Root
		want   string
		wantOK bool
	}{
		{nil, "", false},
		{&specs.Root{}, "", false},
		{&specs.Root{Path: "rootfs"}, "/b/rootfs", true},
		{&specs.Root{Path: "./x/../rootfs/"}, "/b/rootfs", true},
		{&specs.Root{Path: "/var/lib/r//rootfs/"}, "/var/lib/r/rootfs", true},
	} {
		got, ok := RootPath(&specs.Spec{Root: tc.root}, "/b")
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("RootPath(%+v) = %q, %v; want %q, %v", tc.root, got, ok, tc.want, tc.wantOK)
		}
	}
}
