package csi

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Keys of StorageClass parameters and volume contexts (PV volumeAttributes,
// inline volumeAttributes, what CreateVolume returns).
const (
	KeyFSType   = "fstype"
	KeySource   = "source"
	KeyOptions  = "options"
	KeyOnDelete = "onDelete"
	// KeySubdir names the volume's directory below the mounted source, for
	// the types whose source cannot name a subdirectory: the staging path
	// holds the base, publish binds the subdirectory.
	KeySubdir = "subdir"
)

// kubernetesPrefix starts the keys Kubernetes adds on its own (pod info on
// mount, csi.storage.k8s.io/ephemeral, the external-provisioner's extra
// create metadata); they are not the driver's and never refused.
const kubernetesPrefix = "csi.storage.k8s.io/"

// OnDelete values.
const (
	OnDeleteDelete = "delete"
	OnDeleteRetain = "retain"
)

// errInvalid marks a request the caller must change: gRPC InvalidArgument.
var errInvalid = errors.New("invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}

// Volume is what a helper mount needs: the file system type, the source as
// the helper takes it, the -o options, and optionally a subdirectory of the
// mounted source that is the volume.
type Volume struct {
	FSType  string
	Source  string
	Options []string
	Subdir  string
}

// OptionString is the -o argument: the options joined by commas.
func (v Volume) OptionString() string { return strings.Join(v.Options, ",") }

// Equal reports whether two volumes mount the same thing the same way.
func (v Volume) Equal(o Volume) bool {
	return v.FSType == o.FSType && v.Source == o.Source && v.Subdir == o.Subdir &&
		strings.Join(v.Options, ",") == strings.Join(o.Options, ",")
}

// Context is the volume context that names v (what NodeStage reads back),
// without the keys v leaves empty.
func (v Volume) Context() map[string]string {
	c := map[string]string{KeyFSType: v.FSType, KeySource: v.Source, KeyOptions: v.OptionString(), KeySubdir: v.Subdir}
	maps.DeleteFunc(c, func(_, value string) bool { return value == "" })
	return c
}

// validate refuses what could make a helper's command line mean something
// else: a source that reads as an option, control characters, options that
// smuggle another argument. mount(8) and the helpers take the source and
// the -o string as separate argv entries, but helpers are often shell
// scripts (mount.glusterfs is one) that split and re-parse them.
func (v Volume) validate() error {
	switch {
	case v.FSType == "":
		return invalid("no %s in the volume context or parameters, and no fs_type in the volume capability", KeyFSType)
	case !fsTypeName.MatchString(v.FSType) || strings.HasPrefix(v.FSType, "-"):
		return invalid("%s %q: use a file system type name such as glusterfs", KeyFSType, v.FSType)
	case v.Source == "":
		return invalid("no %s in the volume context or parameters (e.g. 127.0.0.2:/vol)", KeySource)
	case strings.HasPrefix(v.Source, "-"):
		return invalid("%s %q starts with \"-\": a helper would read it as an option", KeySource, v.Source)
	case hasControl(v.Source) || strings.ContainsAny(v.Source, " \t"):
		return invalid("%s %q holds white space or control characters", KeySource, v.Source)
	}
	if err := checkOptions(v.Options...); err != nil || v.Subdir == "" {
		return err
	}
	return checkName(KeySubdir, v.Subdir)
}

// checkOptions refuses a mount option that is empty, starts with "-"
// (a second -o, or any other flag, for a helper that re-splits its
// arguments), or holds white space, a comma (options are split on commas
// first) or a control character such as a newline.
func checkOptions(opts ...string) error {
	for _, o := range opts {
		switch {
		case o == "":
			return invalid("empty mount option")
		case strings.HasPrefix(o, "-"):
			return invalid("mount option %q starts with \"-\": options are -o values, not flags", o)
		case hasControl(o) || strings.ContainsAny(o, " \t,"):
			return invalid("mount option %q holds white space, a comma or a control character", o)
		}
	}
	return nil
}

// splitOptions splits a comma-separated option string, refusing empty
// entries other than a trailing comma's.
func splitOptions(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	out := strings.Split(strings.TrimSuffix(s, ","), ",")
	if err := checkOptions(out...); err != nil {
		return nil, err
	}
	return out, nil
}

// checkName refuses a name that is not one plain path component: it becomes
// a directory name on the base volume.
func checkName(what, name string) error {
	switch {
	case name == "":
		return invalid("empty %s", what)
	case name == "." || name == "..":
		return invalid("%s %q is not a directory name", what, name)
	case strings.ContainsAny(name, "/|") || hasControl(name):
		return invalid("%s %q holds \"/\", \"|\" or a control character", what, name)
	case len(name) > 255:
		return invalid("%s is %d bytes long, more than a directory name can be (255)", what, len(name))
	case name == metaDir:
		return invalid("%s %q is the driver's own directory", what, name)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// fsTypeName is a file system type name: letters, digits, ".", "_", "-".
var fsTypeName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// volumeFromContext reads a node request's volume: the context's keys, the
// capability's fs_type and mount flags. Unknown keys are refused (a typo
// would otherwise mount something else than meant), except Kubernetes' own.
func volumeFromContext(ctx map[string]string, capFSType string, flags []string) (Volume, error) {
	if err := checkKeys(ctx, KeyFSType, KeySource, KeyOptions, KeySubdir); err != nil {
		return Volume{}, err
	}
	v := Volume{FSType: ctx[KeyFSType], Source: ctx[KeySource], Subdir: ctx[KeySubdir]}
	if v.FSType == "" {
		v.FSType = capFSType
	} else if capFSType != "" && capFSType != v.FSType {
		return Volume{}, invalid("the volume capability's fs_type %q differs from the volume's %s %q", capFSType, KeyFSType, v.FSType)
	}
	opts, err := splitOptions(ctx[KeyOptions])
	if err != nil {
		return Volume{}, err
	}
	v.Options = mergeOptions(opts, flags)
	return v, v.validate()
}

// mergeOptions appends the mount flags (StorageClass or PV mountOptions) to
// the options, dropping exact repeats.
func mergeOptions(opts, flags []string) []string {
	var out []string
	for _, o := range slices.Concat(opts, flags) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

func checkKeys(m map[string]string, known ...string) error {
	unknown := slices.DeleteFunc(slices.Sorted(maps.Keys(m)), func(k string) bool {
		return strings.HasPrefix(k, kubernetesPrefix) || slices.Contains(known, k)
	})
	if len(unknown) > 0 {
		return invalid("unknown keys %q: the driver reads %q", unknown, known)
	}
	return nil
}

// subdirSources are the types whose source can name a subdirectory of the
// exported volume (server:/vol/subdir, //server/share/subdir, mon:/path):
// the volume is mounted alone. Every other type mounts the base and binds
// the subdirectory.
var subdirSources = map[string]bool{"glusterfs": true, "nfs": true, "nfs4": true, "ceph": true, "cifs": true}

// idVersion starts the volume ids CreateVolume makes.
const idVersion = "rs1"

// Created is a volume that CreateVolume made: a directory Name on the base
// volume Base.
type Created struct {
	Base     Volume // the StorageClass's volume
	Name     string // the directory on it: the request's name
	OnDelete string
}

// Volume is how nodes mount the created volume.
func (c Created) Volume() Volume {
	v := c.Base
	v.Options = append([]string(nil), c.Base.Options...)
	if subdirSources[v.FSType] {
		v.Source = strings.TrimSuffix(v.Source, "/") + "/" + c.Name
		return v
	}
	v.Subdir = c.Name
	return v
}

// ID encodes what DeleteVolume and NodeStage need in the volume id:
// "rs1|fstype|onDelete|base source|name|options". The fields hold no "|"
// (CreateVolume refuses it), so the id splits back unambiguously.
func (c Created) ID() string {
	return strings.Join([]string{idVersion, c.Base.FSType, c.OnDelete, c.Base.Source, c.Name, c.Base.OptionString()}, "|")
}

// parseID decodes an id made by Created.ID. Any other id (a static PV's
// volumeHandle, an id from another driver) is not ours: ok is false.
func parseID(id string) (Created, bool) {
	f := strings.Split(id, "|")
	if len(f) != 6 || f[0] != idVersion {
		return Created{}, false
	}
	opts, err := splitOptions(f[5])
	c := Created{Base: Volume{FSType: f[1], Source: f[3], Options: opts}, Name: f[4], OnDelete: f[2]}
	if err != nil || (c.OnDelete != OnDeleteDelete && c.OnDelete != OnDeleteRetain) || c.Base.validate() != nil || checkName("name", c.Name) != nil {
		return Created{}, false
	}
	return c, true
}

// createdFromParams reads CreateVolume's StorageClass parameters and name.
func createdFromParams(name string, params map[string]string, capFSType string, flags []string) (Created, error) {
	if err := checkKeys(params, KeyFSType, KeySource, KeyOptions, KeyOnDelete); err != nil {
		return Created{}, err
	}
	if err := checkName("volume name", name); err != nil {
		return Created{}, err
	}
	base, err := volumeFromContext(map[string]string{KeyFSType: params[KeyFSType], KeySource: params[KeySource], KeyOptions: params[KeyOptions]}, capFSType, flags)
	if err != nil {
		return Created{}, err
	}
	if strings.Contains(base.Source, "|") || strings.Contains(base.OptionString(), "|") {
		return Created{}, invalid("%s or %s holds \"|\", which the volume id uses as its separator", KeySource, KeyOptions)
	}
	c := Created{Base: base, Name: name, OnDelete: cmp.Or(params[KeyOnDelete], OnDeleteDelete)}
	if c.OnDelete != OnDeleteDelete && c.OnDelete != OnDeleteRetain {
		return Created{}, invalid("%s %q: use %q or %q", KeyOnDelete, c.OnDelete, OnDeleteRetain, OnDeleteDelete)
	}
	return c, nil
}

// CheckParameters validates StorageClass parameters as CreateVolume reads
// them (for manifests checked before they reach a cluster).
func CheckParameters(params map[string]string) error {
	_, err := createdFromParams("volume", params, "", nil)
	return err
}

// CheckVolumeContext validates a volume context (PV volumeAttributes, an
// inline volume's attributes) as NodeStageVolume reads it.
func CheckVolumeContext(vctx map[string]string) error {
	_, err := volumeFromContext(vctx, "", nil)
	return err
}
