// Package config loads the TOML configuration shared by runc-shared,
// mount-hook and mounter.
//
// The wrapper loads it on every runtime call (engines call `state` all the
// time), so Load does one open, one fstat, one read and one TOML parse, plus
// a readlink and one lstat per directory above the file and the lstats that
// resolve each propagate path once, and nothing else: no PATH lookup, no
// regexp. Work that only a failed load needs (finding the line of a bad key)
// happens on the error path.
//
// A missing file is not an error: it means pure pass-through (Config.Missing).
// A file that is writable by group or others, owned by anyone but root (or
// the user running the binary), or in a directory that others can write or
// own, is refused: it decides which containers get mounts on the host.
package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Where the configuration comes from when no flag names it.
const (
	// DefaultPath is used when neither a flag nor EnvVar names a file.
	DefaultPath = "/etc/runc-shared/config.toml"
	// EnvVar names the configuration file when no flag does.
	EnvVar = "RUNC_SHARED_CONFIG"
)

// Defaults of the top-level keys.
const (
	DefaultRuntime   = runtime.DefaultRuntime
	DefaultStateDir  = "/run/runc-shared"
	DefaultLogLevel  = "info"
	DefaultHostMntns = "/proc/1/ns/mnt"
	// HostMntnsSelf as host-mntns means the wrapper's own mount namespace.
	HostMntnsSelf = "self"
	// KubeletDir is what a rule from the seed's mount-container syntax
	// propagates.
	KubeletDir = "/var/lib/kubelet"
)

// MaxSize bounds the configuration file. A real one is a few kilobytes;
// reading a huge one would sit on the start path of every container.
const MaxSize = 1 << 20

// Config is the parsed configuration file.
type Config struct {
	// Runtime is the delegate runtime: a name looked up on PATH or an
	// absolute path.
	Runtime string
	// StateDir holds the registry of live mounters.
	StateDir string
	// LogLevel is one of panic, fatal, error, warn, warning, info, debug,
	// trace (lower case).
	LogLevel string
	// HostMntns is the host mount namespace file for preload mode, or
	// HostMntnsSelf.
	HostMntns string
	// HookPath is the mount-hook binary; "" means beside runc-shared (see
	// HookBinary).
	HookPath string
	// Mounters are the rules: the [[mounter]] tables in file order, then
	// the rules of the seed's mount-container entries in list order.
	// spec.FindRule takes the first match, so order is significant.
	Mounters []spec.Rule
	// Path is the file the configuration came from; "" when none was read.
	Path string
	// Missing is set when the file did not exist (or no path was given):
	// every container passes through. Callers log it at debug level, since
	// an explicitly named file that is missing is likely a mistake.
	Missing bool
}

// Default returns the configuration used when no file exists: defaults for
// every key and no rule, so every call passes through.
func Default() *Config {
	return &Config{
		Runtime:   DefaultRuntime,
		StateDir:  DefaultStateDir,
		LogLevel:  DefaultLogLevel,
		HostMntns: DefaultHostMntns,
	}
}

// Path resolves the configuration file: the flag (the wrapper's
// --runc-shared-config, or --config of mount-hook and mounter) when it was
// given, else $RUNC_SHARED_CONFIG when not empty, else DefaultPath. A flag
// given with an empty value returns "", which Load treats as no file: an
// explicit way to run without configuration.
func Path(flag string, flagSet bool) string {
	if flagSet {
		return flag
	}
	if p := os.Getenv(EnvVar); p != "" {
		return p
	}
	return DefaultPath
}

// Name is how messages name the configuration: its file, or that none was
// found.
func (c *Config) Name() string {
	if c.Path == "" {
		return "the configuration (none found)"
	}
	return c.Path
}

// HookBinary returns the mount-hook binary to inject into specs: hook-path
// when set, else mount-hook in the directory of self (the running
// runc-shared binary, as os.Executable reports it).
func (c *Config) HookBinary(self string) string {
	if c.HookPath != "" {
		return c.HookPath
	}
	return filepath.Join(filepath.Dir(self), hookargs.Name)
}

// PreloadLibName is the preload shim, libhostmount.so.
const PreloadLibName = "libhostmount.so"

// PreloadLibrary finds the preload shim for the runc-shared binary self:
// beside it (the build tree's bin/), then in the installed
// PREFIX/lib/runc-shared. The wrapper injects this file; doctor checks the
// same places.
func PreloadLibrary(self string) (string, error) {
	dir := filepath.Dir(self)
	for _, p := range []string{
		filepath.Join(dir, PreloadLibName),
		filepath.Join(dir, "..", "lib", "runc-shared", PreloadLibName),
	} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("%s not found beside %s or in ../lib/runc-shared: run `make install` (or `make` in the source tree)", PreloadLibName, self)
}

// PassThrough reports whether there is no rule at all, so that no container
// can match and every call goes straight to the delegate.
func (c *Config) PassThrough() bool {
	return len(c.Mounters) == 0
}

// Rule returns the rule called name, or nil.
func (c *Config) Rule(name string) *spec.Rule {
	for i := range c.Mounters {
		if c.Mounters[i].Name == name {
			return &c.Mounters[i]
		}
	}
	return nil
}

// RulesFor returns the rules whose mounter serves fstype, in order.
func (c *Config) RulesFor(fstype string) []*spec.Rule {
	var out []*spec.Rule
	for i := range c.Mounters {
		if c.Mounters[i].Routes(fstype) {
			out = append(out, &c.Mounters[i])
		}
	}
	return out
}
