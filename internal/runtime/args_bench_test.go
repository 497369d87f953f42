package runtime

import (
	"strings"
	"testing"
)

// BenchmarkParse parses every runtime invocation captured from Docker,
// containerd and Podman: the first thing the wrapper does on every call, so
// it sits on the path of `state`, the call engines make most often.
func BenchmarkParse(b *testing.B) {
	lines := engineArgv(b)
	b.Run("engines", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, argv := range lines {
				if _, err := Parse(argv); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/argv")
	})
	state := strings.Fields("--root /run/containerd/runc/k8s.io --log /run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/log.json --log-format json state c1")
	b.Run("state", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(state); err != nil {
				b.Fatal(err)
			}
		}
	})
}
