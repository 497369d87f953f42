package hookargs

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParseStage(t *testing.T) {
	for in, want := range map[string]Stage{
		"createRuntime": CreateRuntime, "createruntime": CreateRuntime, "create-runtime": CreateRuntime,
		"CREATE_RUNTIME": CreateRuntime, "prestart": Prestart, "preStart": Prestart,
		"poststop": Poststop, "postStop": Poststop, "post-stop": Poststop,
	} {
		got, err := ParseStage(in)
		if err != nil || got != want {
			t.Errorf("ParseStage(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "createContainer", "startContainer", "poststart", "create"} {
		if got, err := ParseStage(in); err == nil {
			t.Errorf("ParseStage(%q) = %q, want an error", in, got)
		}
	}
	if !CreateRuntime.Creates() || !Prestart.Creates() || Poststop.Creates() {
		t.Error("Creates() is wrong")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want *Args
		err  string
	}{
		{"stage only", []string{"createRuntime"}, &Args{Stage: CreateRuntime}, ""},
		{"as the wrapper injects it",
			[]string{"--config", "/etc/rs.toml", "--runtime", "/usr/sbin/runc", "--root", "/run/x", "poststop"},
			&Args{Config: "/etc/rs.toml", ConfigSet: true, Runtime: "/usr/sbin/runc", Root: "/run/x", Stage: Poststop}, ""},
		{"equals forms", []string{"--config=/c.toml", "-root=/r", "prestart"},
			&Args{Config: "/c.toml", ConfigSet: true, Root: "/r", Stage: Prestart}, ""},
		{"explicitly no config", []string{"--config=", "poststop"}, &Args{ConfigSet: true, Stage: Poststop}, ""},
		{"no stage", []string{"--root", "/r"}, nil, "exactly one STAGE"},
		{"two stages", []string{"createRuntime", "poststop"}, nil, "exactly one STAGE"},
		{"flag after stage", []string{"poststop", "--root", "/r"}, nil, "exactly one STAGE"},
		{"unknown stage", []string{"poststart"}, nil, "unknown stage"},
		{"unknown flag", []string{"--bundle", "/b", "poststop"}, nil, "flag provided but not defined"},
		{"missing value", []string{"--config"}, nil, "needs an argument"},
		{"relative config", []string{"--config", "c.toml", "poststop"}, nil, "relative path"},
		{"relative runtime", []string{"--runtime", "bin/runc", "poststop"}, nil, "relative path"},
		{"runtime name on PATH", []string{"--runtime", "runc", "poststop"}, &Args{Runtime: "runc", Stage: Poststop}, ""},
		{"state dir", []string{"--state-dir", "/run/rs", "poststop"}, &Args{StateDir: "/run/rs", Stage: Poststop}, ""},
		{"relative state dir", []string{"--state-dir", "run/rs", "poststop"}, nil, "relative path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.argv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %+v, %v; want error %q", tc.argv, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.argv, got, tc.want)
			}
		})
	}
	if _, err := Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
	if _, err := Parse([]string{"--version", "poststop"}); !errors.Is(err, ErrVersion) {
		t.Errorf("--version: %v, want ErrVersion", err)
	}
}

// TestFormatParses: what the wrapper and configure write, mount-hook reads
// back as the same command line.
func TestFormatParses(t *testing.T) {
	for _, a := range []Args{
		{Stage: CreateRuntime},
		{Config: "/etc/rs.toml", ConfigSet: true, Stage: Poststop},
		{Config: "/c.toml", ConfigSet: true, Runtime: "runc", Root: "/run/x", StateDir: "/run/rs", Stage: CreateRuntime},
		{StateDir: "/var/run/rs", Stage: Poststop},
	} {
		args := a.Format()
		if args[0] != Name {
			t.Errorf("Format(%+v) = %q: program name first", a, args)
		}
		got, err := Parse(args[1:])
		if err != nil || !reflect.DeepEqual(*got, a) {
			t.Errorf("Parse(Format(%+v)) = %+v, %v", a, got, err)
		}
	}
	if got := (&Args{Root: "/r", StateDir: "/s", Stage: Poststop}).Format(); !reflect.DeepEqual(got,
		[]string{"mount-hook", "--root", "/r", "--state-dir", "/s", "poststop"}) {
		t.Errorf("Format = %q", got)
	}
}
