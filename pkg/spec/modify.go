package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Modifier changes a spec in place. Each rewrite rule is one small Modifier
// (the Modify method of a rule's type).
type Modifier func(*specs.Spec) error

// Apply applies the modifiers in order, stopping at the first error.
func Apply(s *specs.Spec, ms ...Modifier) error {
	for _, m := range ms {
		if err := m(s); err != nil {
			return err
		}
	}
	return nil
}

// propagationOptions are the mount options that set a mount's propagation
// type; a mount carries at most one after a rewrite.
var propagationOptions = []string{
	"shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable",
}

// isPropagation reports whether the mount option o sets propagation.
func isPropagation(o string) bool { return slices.Contains(propagationOptions, o) }

// IsBind reports whether m is a bind mount (runc treats type "bind" and the
// "bind"/"rbind" options alike).
func IsBind(m *specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// SourceResolver decides which bind sources are allowlisted. ResolveSource
// returns the resolved host path and true for a source at or below an
// allowlisted path; false (and no error) for a source that is none of our
// business; an error for a source that must be refused (it is below an
// allowlisted path but resolves outside the allowlist, for one).
type SourceResolver interface {
	ResolveSource(source string) (resolved string, allowlisted bool, err error)
}

// Bind is a bind mount whose host source a SourceResolver allowlisted.
type Bind struct {
	Source      string // the resolved host path
	Destination string // the path inside the container: absolute, cleaned
	// Staged is the staging path runc binds in place of Source (see
	// StagedBinds), "" when the spec binds Source itself.
	Staged string
}

func (b Bind) String() string {
	if b.Source == b.Destination {
		return b.Source
	}
	return b.Source + " (at " + b.Destination + " inside)"
}

// AllowlistedBinds returns the bind mounts of s whose source r allowlists,
// in spec order, with the source r resolved it to. The wrapper (preload's
// allowlist), mount-hook (what to verify) and mounter (how to translate a
// target) all ask this one question; r's error for an unsafe source stops
// it. A bind without a destination is skipped: runc refuses it anyway. A
// bind of a staging path (see StagedBinds) stands for the host path it was
// staged from, which is what r is asked about.
func AllowlistedBinds(s *specs.Spec, r SourceResolver) ([]Bind, error) {
	staged := StagedSources(s)
	var out []Bind
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if !IsBind(m) || m.Destination == "" {
			continue
		}
		source, stagedAt := m.Source, ""
		if orig, ok := staged[m.Source]; ok {
			source, stagedAt = orig, m.Source
		}
		resolved, ok, err := r.ResolveSource(source)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s -> %s: %w", source, m.Destination, err)
		}
		if ok {
			out = append(out, Bind{Source: resolved, Destination: cleanDest(m.Destination), Staged: stagedAt})
		}
	}
	return out, nil
}

// cleanDest returns a mount destination absolute and cleaned: runc takes a
// relative destination as relative to the root.
func cleanDest(dest string) string { return path.Clean("/" + dest) }

var (
	// ErrUnsafeSource is wrapped when a bind source cannot be shared safely.
	ErrUnsafeSource = errors.New("unsafe bind source")
	// ErrBelowSharedBind is wrapped when the spec has runc mount something
	// at or below the destination of an allowlisted bind. runc makes its
	// mounts in spec order and then the masked and read-only paths; below a
	// bind that is already rshared each of them propagates to the host, on
	// every start of the container.
	ErrBelowSharedBind = errors.New("runc would mount below a shared bind")
)

// allowlisted is an allowlisted bind of the spec being rewritten.
type allowlisted struct {
	m        specs.Mount
	resolved string
	dest     string
}

// SharedMounts returns the mount list of s with every allowlisted bind mount
// given rshared propagation, so a mount made below it inside the container
// reaches the host's peer group, and makes sure that none of runc's own
// set-up mounts lands there:
//
//   - the allowlisted binds move to the end of the mount list, in spec order,
//     so runc makes every other mount of the spec before any shared bind
//     exists (a later mount whose destination leads into one through a
//     symlink of the image would otherwise land on the host);
//   - an allowlisted bind at or below another one's destination that shows
//     what the outer (recursive) bind already shows there, with the same
//     options, is dropped: engines and CSI DaemonSets bind /var/lib/kubelet
//     and /var/lib/kubelet/plugins that way;
//   - any other mount at or below an allowlisted bind's destination, a
//     maskedPaths or readonlyPaths entry there, and an allowlisted bind at or
//     below /dev (where runc makes devices and the console after the spec's
//     mounts) are refused with ErrBelowSharedBind.
//
// The source is replaced by its resolved path: the path checked is the path
// runc mounts. sources are the resolved host paths of the kept binds, each
// once, for the host-side preparation. s is not changed.
func SharedMounts(s *specs.Spec, r SourceResolver) (mounts []specs.Mount, sources []string, err error) {
	var binds []allowlisted
	var others []specs.Mount
	for _, m := range s.Mounts {
		if !IsBind(&m) {
			others = append(others, m)
			continue
		}
		resolved, ok, err := r.ResolveSource(m.Source)
		if err != nil {
			return nil, nil, fmt.Errorf("bind mount %s -> %s: %w", m.Source, m.Destination, err)
		}
		if !ok {
			others = append(others, m)
			continue
		}
		binds = append(binds, allowlisted{m: m, resolved: resolved, dest: cleanDest(m.Destination)})
	}
	if len(binds) == 0 {
		return s.Mounts, nil, nil
	}
	kept, err := withoutNested(binds)
	if err != nil {
		return nil, nil, err
	}
	if err := checkBelow(s, kept, others); err != nil {
		return nil, nil, err
	}
	for _, b := range kept {
		m := b.m
		m.Options = append(slices.DeleteFunc(slices.Clone(m.Options), isPropagation), "rshared")
		m.Source = b.resolved
		others = append(others, m)
		if !slices.Contains(sources, b.resolved) {
			sources = append(sources, b.resolved)
		}
	}
	return others, sources, nil
}

// withoutNested returns the allowlisted binds in spec order without those
// that repeat what an outer one shows, or refuses a nested one that does not.
func withoutNested(binds []allowlisted) ([]allowlisted, error) {
	// Outer binds first: by depth of the destination, spec order within.
	order := make([]int, len(binds))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return strings.Count(binds[a].dest, "/") - strings.Count(binds[b].dest, "/")
	})
	drop := make([]bool, len(binds))
	for n, i := range order {
		b := binds[i]
		for _, j := range order[:n] {
			o := binds[j]
			if drop[j] || !within(b.dest, o.dest) {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(b.dest, o.dest), "/")
			switch {
			case b.resolved != path.Join(o.resolved, rel):
				return nil, fmt.Errorf("bind mount %s -> %s: %w %s -> %s and shows another directory there; runc would make it on the host, on every start: bind it outside %s",
					b.m.Source, b.dest, ErrBelowSharedBind, o.m.Source, o.dest, o.dest)
			case !slices.Contains(o.m.Options, "rbind"):
				return nil, fmt.Errorf("bind mount %s -> %s: %w %s -> %s, which is not recursive; make the outer bind rbind and drop this one",
					b.m.Source, b.dest, ErrBelowSharedBind, o.m.Source, o.dest)
			case !slices.Equal(plainOptions(b.m), plainOptions(o.m)):
				return nil, fmt.Errorf("bind mount %s -> %s: %w %s -> %s with other options (%v, not %v); runc would make it on the host, on every start: give it the outer bind's options or bind it elsewhere",
					b.m.Source, b.dest, ErrBelowSharedBind, o.m.Source, o.dest, plainOptions(b.m), plainOptions(o.m))
			}
			drop[i] = true // the outer rbind shows the same directory
			break
		}
	}
	var kept []allowlisted
	for i, b := range binds {
		if !drop[i] {
			kept = append(kept, b)
		}
	}
	return kept, nil
}

// checkBelow refuses any other mount, masked path or read-only path at or
// below the destination of an allowlisted bind.
func checkBelow(s *specs.Spec, binds []allowlisted, others []specs.Mount) error {
	under := func(p string) *allowlisted {
		for i := range binds {
			if within(p, binds[i].dest) {
				return &binds[i]
			}
		}
		return nil
	}
	devices := slices.Clone(runcDevicePaths)
	if s.Linux != nil {
		for _, d := range s.Linux.Devices {
			devices = append(devices, cleanDest(d.Path))
		}
	}
	for _, d := range devices {
		if b := under(d); b != nil {
			return fmt.Errorf("bind mount %s -> %s: %w: runc makes %s there after the spec's mounts; bind the allowlisted path elsewhere",
				b.m.Source, b.dest, ErrBelowSharedBind, d)
		}
	}
	for _, m := range others {
		if b := under(cleanDest(m.Destination)); b != nil {
			return fmt.Errorf("mount %s (%s) at %s: %w %s -> %s; runc would make it on the host, on every start: mount it elsewhere",
				m.Source, m.Type, m.Destination, ErrBelowSharedBind, b.m.Source, b.dest)
		}
	}
	if s.Linux == nil {
		return nil
	}
	for _, l := range []struct {
		field string
		paths []string
	}{{"maskedPaths", s.Linux.MaskedPaths}, {"readonlyPaths", s.Linux.ReadonlyPaths}} {
		for _, p := range l.paths {
			if b := under(cleanDest(p)); b != nil {
				return fmt.Errorf("linux.%s entry %s: %w %s -> %s; runc would mount over it on the host: remove the entry",
					l.field, p, ErrBelowSharedBind, b.m.Source, b.dest)
			}
		}
	}
	return nil
}

// runcDevicePaths are where runc 1.1 may mount after the spec's mounts when
// it sets up /dev (libcontainer/rootfs_linux.go): the console (a bind of the
// pty when process.terminal is set) and the default devices (bind mounts
// from the host in a user namespace). linux.devices are added to them.
var runcDevicePaths = []string{"/dev/console", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

// plainOptions returns a bind's options other than bind, rbind, rw and the
// propagation options, sorted: what makes two binds of one directory differ.
func plainOptions(m specs.Mount) []string {
	var out []string
	for _, o := range m.Options {
		if o != "bind" && o != "rbind" && o != "rw" && !isPropagation(o) && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// within reports whether the clean absolute path p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// UnlistedPropagation gives every mount that carries no propagation option
// this one ("rslave"). Under the rshared root of a mounter, runc keeps a
// bind of a shared host mount in the host's peer group when the bind says
// nothing: the engines' cgroup v1 mount (runc binds each hierarchy from the
// host) would join the host's cgroupfs peer groups, and a mount below it in
// the container would land in the host's cgroupfs. rslave keeps it one-way.
// Run it after SharedMounts, whose binds all carry rshared.
type UnlistedPropagation string

// Modify is the Modifier.
func (p UnlistedPropagation) Modify(s *specs.Spec) error {
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if !slices.ContainsFunc(m.Options, isPropagation) {
			m.Options = append(slices.Clone(m.Options), string(p))
		}
	}
	return nil
}

// AnnotationStagedSources is the annotation in which the wrapper records,
// as a JSON object, the host path each staging path stands for.
const AnnotationStagedSources = "runc-shared.io/staged-sources"

// StagedBinds points the allowlisted binds at the staging paths the wrapper
// bound their sources to (resolved source -> staging path), so runc binds
// the directory that was opened and checked, whatever the source's name
// leads to by then, and records the mapping in AnnotationStagedSources.
// Run it after SharedMounts, whose sources are resolved.
type StagedBinds map[string]string

// Modify is the Modifier.
func (sb StagedBinds) Modify(s *specs.Spec) error {
	back := map[string]string{}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if p, ok := sb[m.Source]; ok && IsBind(m) {
			back[p] = m.Source
			m.Source = p
		}
	}
	if len(back) == 0 {
		return nil
	}
	data, err := json.Marshal(back)
	if err != nil {
		return fmt.Errorf("encode %s: %w", AnnotationStagedSources, err)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationStagedSources] = string(data)
	return nil
}

// StagingDir is the directory in which the wrapper stages the bind sources
// of container id (see StagedBinds) and mount-hook detaches them: below the
// state directory, which only root can write. The ID must name a directory
// there.
func StagingDir(stateDir, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("container ID %q cannot name a staging directory", id)
	}
	return filepath.Join(stateDir, "staging", id), nil
}

// StagedSources returns the staging paths of s and the host paths they
// stand for (AnnotationStagedSources), or nil.
func StagedSources(s *specs.Spec) map[string]string {
	v, ok := s.Annotations[AnnotationStagedSources]
	if !ok {
		return nil
	}
	var m map[string]string
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil
	}
	return m
}

// RootfsPropagation sets linux.rootfsPropagation. With runc's default
// (rslave on /) a mount below a shared bind stays in the container: the
// bind's peer group is only reachable when / itself is shared (measured on
// runc 1.1; see platform-facts "Propagation").
type RootfsPropagation string

// Modify is the Modifier.
func (p RootfsPropagation) Modify(s *specs.Spec) error {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	s.Linux.RootfsPropagation = string(p)
	return nil
}
