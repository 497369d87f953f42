package csi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestVolumeFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]string
		capType string
		flags   []string
		want    Volume
		wantErr string // substring; "" means success
	}{
		{name: "plain", ctx: map[string]string{"fstype": "glusterfs", "source": "127.0.0.2:/v0"},
			want: Volume{FSType: "glusterfs", Source: "127.0.0.2:/v0"}},
		{name: "options and flags merged, repeats dropped", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "options": "log-level=WARNING,ro"},
			flags: []string{"ro", "noatime"}, want: Volume{FSType: "glusterfs", Source: "s:/v", Options: []string{"log-level=WARNING", "ro", "noatime"}}},
		{name: "type from the capability", ctx: map[string]string{"source": "s:/v"}, capType: "glusterfs",
			want: Volume{FSType: "glusterfs", Source: "s:/v"}},
		{name: "kubernetes keys ignored", ctx: map[string]string{"fstype": "nfs", "source": "s:/v", "csi.storage.k8s.io/ephemeral": "true"},
			want: Volume{FSType: "nfs", Source: "s:/v"}},
		{name: "source starting with a dash", ctx: map[string]string{"fstype": "glusterfs", "source": "-oremount"}, wantErr: `starts with "-"`},
		{name: "option with a newline", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "options": "ro\nbind"}, wantErr: "control character"},
		{name: "second -o in the options", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "options": "ro,-o,bind"}, wantErr: `starts with "-"`},
		{name: "option with a space", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "options": "ro -o bind"}, wantErr: "white space"},
		{name: "flag with a dash", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v"}, flags: []string{"-obind"}, wantErr: `starts with "-"`},
		{name: "flag with a comma", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v"}, flags: []string{"ro,bind"}, wantErr: "comma"},
		{name: "empty option", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "options": "ro,,rw"}, wantErr: "empty mount option"},
		{name: "source with a newline", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v\n-o bind"}, wantErr: "control characters"},
		{name: "type as an option", ctx: map[string]string{"fstype": "-oro", "source": "s:/v"}, wantErr: "fstype"},
		{name: "type with a space", ctx: map[string]string{"fstype": "nfs ro", "source": "s:/v"}, wantErr: "fstype"},
		{name: "no type", ctx: map[string]string{"source": "s:/v"}, wantErr: "no fstype"},
		{name: "no source", ctx: map[string]string{"fstype": "glusterfs"}, wantErr: "no source"},
		{name: "types differ", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v"}, capType: "nfs", wantErr: "differs"},
		{name: "unknown key", ctx: map[string]string{"fstype": "glusterfs", "source": "s:/v", "sorce": "x"}, wantErr: `unknown keys ["sorce"]`},
		{name: "subdir with a slash", ctx: map[string]string{"fstype": "tmpfs", "source": "s", "subdir": "../x"}, wantErr: `holds "/"`},
		{name: "subdir dot-dot", ctx: map[string]string{"fstype": "tmpfs", "source": "s", "subdir": ".."}, wantErr: "not a directory name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := volumeFromContext(tt.ctx, tt.capType, tt.flags)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want an invalid-argument error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestVolumeIDRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		params     map[string]string
		wantID     string
		wantSource string
		wantSubdir string
	}{
		{name: "glusterfs mounts the subdirectory", params: map[string]string{"fstype": "glusterfs", "source": "127.0.0.2:/v0"},
			wantID: "rs1|glusterfs|delete|127.0.0.2:/v0|pvc-1|", wantSource: "127.0.0.2:/v0/pvc-1"},
		{name: "retain and options", params: map[string]string{"fstype": "glusterfs", "source": "127.0.0.2:/v0/", "options": "log-level=WARNING", "onDelete": "retain"},
			wantID: "rs1|glusterfs|retain|127.0.0.2:/v0/|pvc-1|log-level=WARNING", wantSource: "127.0.0.2:/v0/pvc-1"},
		{name: "other types bind the subdirectory", params: map[string]string{"fstype": "fuse.sshfs", "source": "u@h:/d"},
			wantID: "rs1|fuse.sshfs|delete|u@h:/d|pvc-1|", wantSource: "u@h:/d", wantSubdir: "pvc-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := createdFromParams("pvc-1", tt.params, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID() != tt.wantID {
				t.Errorf("id %q, want %q", c.ID(), tt.wantID)
			}
			back, ok := parseID(c.ID())
			if !ok || !reflect.DeepEqual(back, c) {
				t.Fatalf("parseID(%q) = %+v, %v; want %+v", c.ID(), back, ok, c)
			}
			v := c.Volume()
			if v.Source != tt.wantSource || v.Subdir != tt.wantSubdir {
				t.Errorf("node volume %+v, want source %q subdir %q", v, tt.wantSource, tt.wantSubdir)
			}
			// NodeStage of a PV that lost its attributes reads the id.
			nv, err := nodeVolume(c.ID(), nil, "", nil)
			if err != nil || !nv.Equal(v) {
				t.Errorf("nodeVolume from the id = %+v, %v; want %+v", nv, err, v)
			}
		})
	}
}

func TestParseIDRefusesForeignIDs(t *testing.T) {
	for _, id := range []string{
		"", "reallyfakevolumeid", "rs1|glusterfs|delete|s:/v|n", "rs2|glusterfs|delete|s:/v|n|",
		"rs1|glusterfs|keep|s:/v|n|", "rs1|glusterfs|delete|-s:/v|n|", "rs1|glusterfs|delete|s:/v|..|",
		"rs1|glusterfs|delete|s:/v|n|-o", "rs1||delete|s:/v|n|",
	} {
		if c, ok := parseID(id); ok {
			t.Errorf("parseID(%q) = %+v, want not ours", id, c)
		}
	}
}

func TestCreatedFromParamsRefusals(t *testing.T) {
	good := map[string]string{"fstype": "glusterfs", "source": "s:/v"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name, volName string
		params        map[string]string
		wantErr       string
	}{
		{"name with a slash", "a/b", good, `holds "/"`},
		{"name dot-dot", "..", good, "not a directory name"},
		{"name of the driver's directory", metaDir, good, "driver's own directory"},
		{"name too long", strings.Repeat("n", 256), good, "255"},
		{"onDelete unknown", "n", with("onDelete", "keep"), "onDelete"},
		{"source with the id separator", "n", with("source", "s:/v|x"), "separator"},
		{"unknown parameter", "n", with("mode", "0777"), "unknown keys"},
		{"source as an option", "n", with("source", "-s"), `starts with "-"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := createdFromParams(tt.volName, tt.params, "", nil)
			if err == nil || !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want invalid argument with %q", err, tt.wantErr)
			}
		})
	}
	if _, err := createdFromParams("pvc-1", with("csi.storage.k8s.io/pv/name", "pvc-1"), "", nil); err != nil {
		t.Errorf("the provisioner's own keys are refused: %v", err)
	}
}
