package configure

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// change is what one target needs.
type change struct {
	t       Target
	old     []byte // nil: the file does not exist
	new     []byte // nil: delete the file
	restore bool   // new is the backup, which is then removed
	action  string
}

// Execute computes every change first and writes only when all of them
// could be computed, so a broken file leaves the others untouched too.
func (p *Plan) Execute(stdout io.Writer) error {
	var changes []change
	for _, t := range p.Targets {
		c, err := p.compute(t)
		if err != nil {
			return err
		}
		changes = append(changes, c)
	}
	verb := "configure"
	if p.Options.Remove {
		verb = "remove"
	}
	for _, c := range changes {
		if c.action == "" {
			fmt.Fprintf(stdout, "%s: %s: unchanged (%s)\n", verb, c.t.Path, c.t.What)
			continue
		}
		if p.Options.DryRun {
			fmt.Fprintf(stdout, "%s (dry run): %s: would be %s (%s)\n", verb, c.t.Path, c.action, c.t.What)
			to := c.t.Path
			if c.new == nil {
				to = "/dev/null"
			}
			from := c.t.Path
			if c.old == nil {
				from = "/dev/null"
			}
			fmt.Fprint(stdout, unifiedDiff(from, to, c.old, c.new))
			continue
		}
		if err := apply(c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s: %s (%s)\n", verb, c.t.Path, c.action, c.t.What)
	}
	// Next steps only matter after a change; warnings always do.
	changed := slices.ContainsFunc(changes, func(c change) bool { return c.action != "" })
	for _, n := range p.Notes {
		if changed || strings.HasPrefix(n, "warning:") {
			fmt.Fprintln(stdout, n)
		}
	}
	for _, c := range changes {
		if c.action != "" && c.t.Next != nil {
			fmt.Fprintln(stdout, c.t.Next(c.new))
		}
	}
	return nil
}

// compute decides what one file needs, without writing.
func (p *Plan) compute(t Target) (change, error) {
	c := change{t: t}
	old, err := readIfExists(t.Path)
	if err != nil {
		return c, err
	}
	c.old = old
	if !p.Options.Remove {
		c.new, err = t.Editor.Apply(old)
		if err != nil {
			return c, fmt.Errorf("%s: %w", t.Path, err)
		}
		switch {
		case old != nil && bytes.Equal(old, c.new):
			c.action = ""
		case old == nil:
			c.action = "created"
		default:
			c.action = "updated, backup in " + t.Path + BackupSuffix
			if _, err := os.Lstat(t.Path + BackupSuffix); err == nil {
				c.action = "updated, the backup " + t.Path + BackupSuffix + " from before runc-shared is kept"
			}
		}
		return c, nil
	}
	if old == nil {
		return c, nil
	}
	// The backup is restored only when the file is still exactly what
	// configure made of it: otherwise the user's later edits would be lost.
	backup, err := readIfExists(t.Path + BackupSuffix)
	if err != nil {
		return c, err
	}
	if backup != nil {
		made, err := t.Editor.Apply(backup)
		if err == nil && bytes.Equal(made, old) {
			c.new, c.restore, c.action = backup, true, "restored from "+t.Path+BackupSuffix
			return c, nil
		}
	}
	c.new, err = t.Editor.Revert(old)
	if err != nil {
		return c, fmt.Errorf("%s: %w", t.Path, err)
	}
	switch {
	case c.new == nil:
		c.action = "removed"
	case bytes.Equal(c.new, old):
		c.action = ""
	default:
		c.action = "entry removed"
		if backup != nil {
			c.action += "; the file changed since configure, so " + t.Path + BackupSuffix + " is kept: compare it"
		}
	}
	return c, nil
}

// apply writes one change: backup first, then the new content.
func apply(c change) error {
	path := c.t.Path
	switch {
	case c.restore:
		if err := writeAtomic(path, c.new); err != nil {
			return err
		}
		if err := os.Remove(path + BackupSuffix); err != nil {
			return fmt.Errorf("remove backup %s: %w", path+BackupSuffix, err)
		}
		return nil
	case c.new == nil:
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	if c.old != nil {
		if err := backupOnce(path); err != nil {
			return err
		}
	}
	return writeAtomic(path, c.new)
}

func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// backupOnce copies path to path.runc-shared.bak unless a backup exists:
// that one holds the content from before runc-shared and must survive
// every later configure.
func backupOnce(path string) error {
	bak := path + BackupSuffix
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("back up %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("back up %w", err)
	}
	f, err := os.OpenFile(bak, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("back up %s: write %s: %w", path, bak, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("back up %s: sync %s: %w", path, bak, err)
	}
	return f.Close()
}

// writeAtomic replaces path with data through a temp file in the same
// directory and a rename, so an engine reading it sees the old or the new
// content, never a mix. An existing file's mode and owner carry over; a new
// file gets 0644 and missing parent directories 0755.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	mode := os.FileMode(0o644)
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".runc-shared-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	// Sync before rename: after a crash the name must not point at a file
	// whose data never reached the disk.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
