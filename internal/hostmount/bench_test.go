package hostmount

import (
	"fmt"
	"strings"
	"testing"
)

// hostWith5000 is a mountinfo of 5,000 unrelated mounts plus the fixture,
// the host size the hook must stay fast on (make bench, scale rows).
func hostWith5000() string {
	var b strings.Builder
	b.WriteString(hostFixture)
	for i := range 5000 {
		fmt.Fprintf(&b, "%d 20 0:%d / /var/lib/docker/overlay2/%08x/merged rw,relatime - overlay overlay rw,lowerdir=/l%d\n", 1000+i, 100+i, i, i)
	}
	return b.String()
}

func BenchmarkMountOfReader5000(b *testing.B) {
	text := hostWith5000()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := MountOfReader(strings.NewReader(text), "/var/lib/kubelet/pods/p/dead/nested/x"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFUSEMountsFromReader5000(b *testing.B) {
	text := hostWith5000()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := FUSEMountsFromReader(strings.NewReader(text), []string{"/var/lib/kubelet"}); err != nil {
			b.Fatal(err)
		}
	}
}
