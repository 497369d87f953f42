package hostmount

import "testing"

func TestWithin(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/var/lib/kubelet", "/var/lib/kubelet", true},
		{"/var/lib/kubelet/pods/x", "/var/lib/kubelet", true},
		{"/var/lib/kubelet-evil", "/var/lib/kubelet", false},
		{"/var/lib/kubelet-evil/pods", "/var/lib/kubelet", false},
		{"/var/lib/kubelet/", "/var/lib/kubelet", true},
		{"/var/lib/kubelet", "/var/lib/kubelet/", true},
		{"/var/lib/kubelet//pods/./x/", "/var/lib/kubelet///", true},
		{"/var/lib", "/var/lib/kubelet", false},
		{"/var/lib/kubelet/../kubelet-evil", "/var/lib/kubelet", false},
		{"/var/lib/kubelet/pods/..", "/var/lib/kubelet", true},
		{"/anything", "/", true},
		{"/", "/", true},
		{"var/lib/kubelet/pods", "var/lib/kubelet", false},
		{"var/lib/kubelet/pods", "/var/lib/kubelet", false},
		{"/var/lib/kubelet/pods", "var/lib/kubelet", false},
		{"", "/", false},
		{"/x", "", false},
		{"/a b/c", "/a b", true},
		{"/a bc", "/a b", false},
	}
	for _, tt := range tests {
		if got := Within(tt.path, tt.prefix); got != tt.want {
			t.Errorf("Within(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}

func TestWithinAny(t *testing.T) {
	prefixes := []string{"/var/lib", "/var/lib/kubelet/", "/mnt/data", "relative"}
	tests := []struct {
		path   string
		want   string
		wantOK bool
	}{
		{"/var/lib/kubelet/pods", "/var/lib/kubelet/", true},
		{"/var/lib/kubelet", "/var/lib/kubelet/", true},
		{"/var/lib/kubelet-evil", "/var/lib", true},
		{"/var/lib", "/var/lib", true},
		{"/mnt/data-evil", "", false},
		{"/mnt/data/x", "/mnt/data", true},
		{"relative/x", "", false},
		{"/etc", "", false},
	}
	for _, tt := range tests {
		got, ok := WithinAny(tt.path, prefixes)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("WithinAny(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := WithinAny("/x", nil); ok {
		t.Error("WithinAny with no prefixes matched")
	}
}

func TestLexicalEscape(t *testing.T) {
	allow := []string{"/var/lib/kubelet"}
	tests := []struct {
		path string
		want bool
	}{
		{"/var/lib/kubelet/pods", false},
		{"/var/lib/kubelet/../../etc", true},
		{"/var/lib/kubelet/..", true},
		{"/var/lib/kubelet/../kubelet-evil/x", true},
		{"/var/lib/kubelet/pods/../pods/x", false},
		{"/var/lib/kubelet/../kubelet/x", false},
		{"/etc/../var/lib/kubelet/x", false},
		{"/etc/passwd", false},
		{"/../../var/lib/kubelet", false},
		{"relative/../x", false},
	}
	for _, tt := range tests {
		if got := lexicalEscape(tt.path, allow); got != tt.want {
			t.Errorf("lexicalEscape(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
