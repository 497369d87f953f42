package spec

import (
	"path/filepath"
	"testing"
)

// The wrapper decodes every config.json it is handed for create and run, and
// rewrites the mounter's: these benchmarks are that path, on the configs
// captured from real engines (benchstat-compatible names and units).

// BenchmarkParse decodes each captured engine config: what a pass-through
// create pays before FindRule says "no match".
func BenchmarkParse(b *testing.B) {
	for _, name := range append(append([]string(nil), engineConfigs...), filepath.Join("testdata", "rich.config.json")) {
		raw := readAny(b, name)
		b.Run(trimConfigName(name), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFindRule matches the Docker mounter capture (env only) against
// rules that look at annotations first, as a typical configuration does.
func BenchmarkFindRule(b *testing.B) {
	s := parseEngine(b, engDockerMounter).Spec
	rules := []Rule{
		{Name: "by-annotation", Match: Match{Annotations: map[string]string{AnnotationMounter: "glusterfs"}}},
		{Name: "seed", Match: Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}, ContainerName: "mounter", ContainerNameIfRecorded: true}},
		{Name: "by-env", Match: Match{Env: map[string]string{EnvMounter: "glusterfs"}}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if FindRule(rules, s) == nil {
			b.Fatal("no rule matched the Docker mounter capture")
		}
	}
}

// BenchmarkRewrite is the whole matched path of the wrapper without the
// host: parse, shared binds, rshared rootfs, hook injection, validation and
// the lossless encode onto the original document.
func BenchmarkRewrite(b *testing.B) {
	for _, name := range []string{engDockerMounter, engContainerd, engPodman} {
		raw := readEngine(b, name)
		b.Run(trimConfigName(name), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				d, err := Parse(raw)
				if err != nil {
					b.Fatal(err)
				}
				if err := Apply(d.Spec,
					(&SharedBinds{Resolver: prefixResolver(hostSource)}).Modify,
					RootfsPropagation("rshared").Modify,
					InjectHooks{Path: "/usr/local/bin/mount-hook", Config: "/etc/runc-shared/config.toml", Runtime: "/usr/sbin/runc", Root: "/run/runc"}.Modify,
				); err != nil {
					b.Fatal(err)
				}
				if err := ValidateRewrite(d.Spec); err != nil {
					b.Fatal(err)
				}
				if _, err := d.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// trimConfigName turns "docker-20.10-mounter-env.config.json" into
// "docker-20.10-mounter-env", a sub-benchmark name benchstat keeps apart.
func trimConfigName(name string) string {
	base := filepath.Base(name)
	for _, suf := range []string{".config.json", ".json"} {
		if len(base) > len(suf) && base[len(base)-len(suf):] == suf {
			return base[:len(base)-len(suf)]
		}
	}
	return base
}
