package mounter

import (
	"cmp"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// DefaultDockerConfig is dockerd's configuration file when it is given no
// --config-file.
const DefaultDockerConfig = "/etc/docker/daemon.json"

// dockerRuntime is a runtime of dockerd that runs runc-shared.
type dockerRuntime struct {
	Name  string // the runtime's name: docker run --runtime NAME
	Where string // the daemon.json or the dockerd command line that defines it
}

// dockerRuntimes finds the Docker runtimes that run runc-shared: those in
// the default daemon.json and in the daemon.json of every running dockerd
// (its --config-file), and those given with dockerd --add-runtime. A runtime
// runs runc-shared when its path is the wrapper or is named runc-shared.
func (m *Mounter) dockerRuntimes(wrapper string) []dockerRuntime {
	isWrapper := func(path string) bool {
		if filepath.Base(path) == "runc-shared" {
			return true
		}
		a, errA := os.Stat(path)
		b, errB := os.Stat(wrapper)
		return errA == nil && errB == nil && os.SameFile(a, b)
	}
	configs := []string{cmp.Or(m.DockerConfig, DefaultDockerConfig)}
	var out []dockerRuntime
	for _, argv := range m.processes("dockerd") {
		for i := 0; i < len(argv); i++ {
			flag, value, inline := strings.Cut(argv[i], "=")
			if !inline && i+1 < len(argv) {
				value = argv[i+1]
			}
			switch flag {
			case "--config-file":
				configs = append(configs, value)
			case "--add-runtime":
				if name, path, ok := strings.Cut(value, "="); ok && isWrapper(path) {
					out = append(out, dockerRuntime{Name: name, Where: "dockerd --add-runtime"})
				}
			}
		}
	}
	slices.Sort(configs)
	for _, c := range slices.Compact(configs) {
		data, err := os.ReadFile(c)
		var dj struct {
			Runtimes map[string]struct {
				Path string `json:"path"`
			} `json:"runtimes"`
		}
		if err != nil || json.Unmarshal(data, &dj) != nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(dj.Runtimes)) {
			if isWrapper(dj.Runtimes[name].Path) {
				out = append(out, dockerRuntime{Name: name, Where: c})
			}
		}
	}
	return out
}

// processes returns the argv of every process whose command name is comm.
func (m *Mounter) processes(comm string) [][]string {
	var out [][]string
	for _, dir := range pids(cmp.Or(m.ProcDir, "/proc")) {
		c, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		out = append(out, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"))
	}
	return out
}

// pids yields the processes under proc (a /proc): each PID with its
// directory.
func pids(proc string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		ents, _ := os.ReadDir(proc)
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && !yield(pid, filepath.Join(proc, e.Name())) {
				return
			}
		}
	}
}

// needsAnnotations reports whether rule can only match a container whose
// spec carries annotations: every match condition must hold, and a
// container name is read from an engine's annotation too.
func needsAnnotations(rule *spec.Rule) bool {
	m := rule.Match
	return len(m.Annotations) > 0 || (m.ContainerName != "" && !m.ContainerNameIfRecorded)
}

// servedWithoutAnnotations reports whether every type of rule is also served
// by another rule of rules that a Docker container can match.
func servedWithoutAnnotations(rule *spec.Rule, rules []spec.Rule) bool {
	for _, t := range rule.FSTypes {
		if !slices.ContainsFunc(rules, func(o spec.Rule) bool { return o.Name != rule.Name && !needsAnnotations(&o) && o.Routes(t) }) {
			return false
		}
	}
	return len(rule.FSTypes) > 0
}

// checkMatch warns about a rule that Docker's containers can never match:
// Docker before 24 (Debian 12 ships 20.10) passes no annotation to the
// runtime (no --annotation; labels never reach config.json), while -e does
// reach process.env. A rule beside it that serves each of its types without
// annotations (an env rule for Docker next to an annotation rule for the
// other engines) leaves nothing to warn about. ok is false when there is
// nothing to say.
func checkMatch(rule *spec.Rule, rules []spec.Rule, docker []dockerRuntime) (c Check, ok bool) {
	if !needsAnnotations(rule) || len(docker) == 0 || servedWithoutAnnotations(rule, rules) {
		return Check{}, false
	}
	where := joinEach(docker, ", ", func(d dockerRuntime) string { return fmt.Sprintf("runtime %q in %s", d.Name, d.Where) })
	value := cmp.Or(rule.Match.Annotations[spec.AnnotationMounter], rule.Name)
	return Check{Warn: true, Name: fmt.Sprintf("match[%s]", rule.Name),
		Fix: fmt.Sprintf("match on env as well: a second [[mounter]] rule with [mounter.match] env = { %s = %q }, and start the Docker mounter with -e %s=%s",
			spec.EnvMounter, value, spec.EnvMounter, value),
		Detail: fmt.Sprintf("rule %q matches only containers with annotations, and dockerd runs runc-shared (%s): Docker before 24 never passes annotations to the runtime, so a Docker mounter never matches and its mounts stay inside it",
			rule.Name, where)}, true
}

// checkDeadMounts reports the FUSE mounts below the rule's paths whose
// daemon is gone: they fail every access and every new mount on them.
func checkDeadMounts(rule *spec.Rule) Check {
	name := fmt.Sprintf("mounts[%s]", rule.Name)
	scan, err := hostmount.ScanFUSE(rule.Propagate, hostmount.DefaultStatTimeout)
	if err != nil {
		return fail(name, "check /proc/self/mountinfo", "%v", err)
	}
	var bad, fix []string
	for _, mi := range scan.Dead {
		bad = append(bad, fmt.Sprintf("%s (%s %s) is dead: Transport endpoint is not connected", mi.Mountpoint, mi.FSType, mi.Source))
		fix = append(fix, "umount -l "+mi.Mountpoint)
	}
	for _, mi := range scan.Hung {
		bad = append(bad, fmt.Sprintf("%s (%s %s) does not answer within %v", mi.Mountpoint, mi.FSType, mi.Source, hostmount.DefaultStatTimeout))
		fix = append(fix, "check its daemon, or umount -l "+mi.Mountpoint)
	}
	if len(bad) > 0 {
		return fail(name, strings.Join(fix, "; ")+", or restart the mounter (its mount-hook detaches dead mounts when it stops); then mount again",
			"%s", strings.Join(bad, "; "))
	}
	return pass(name, "no dead FUSE mount below %v (%d live)", rule.Propagate, len(scan.Live))
}
