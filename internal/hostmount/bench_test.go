package hostmount

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
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

// BenchmarkMountsOfDevices5000 asks a host of 5,000 mounts for the mounts
// of one device, the question the consumer scan of mounter status puts to
// every mount namespace: through Mounts' filter (every line parsed) and
// MountsOfDevices (only that device's lines).
func BenchmarkMountsOfDevices5000(b *testing.B) {
	text := hostWith5000()
	dev := unix.Mkdev(0, 42)
	has := func(d uint64) bool { return d == dev }
	b.Run("filter", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			ms, err := mountinfo.GetMountsFromReader(strings.NewReader(text), func(m *mountinfo.Info) (bool, bool) {
				return !has(unix.Mkdev(uint32(m.Major), uint32(m.Minor))), false
			})
			if err != nil || len(ms) != 1 {
				b.Fatal(ms, err)
			}
		}
	})
	b.Run("devices", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			ms, err := devicesFromReader(strings.NewReader(text), has, nil)
			if err != nil || len(ms) != 1 {
				b.Fatal(ms, err)
			}
		}
	})
}
