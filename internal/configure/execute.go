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

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
)

// change is what one target needs.
type change struct {
	t       target
	old     []byte // nil: the file does not exist
	new     []byte // nil: delete the file
	restore bool   // new is the backup, which is then removed
	action  string
}

// execute computes every change first and writes only when all of them
// could be computed, so a broken file leaves the others untouched too.
func (p *plan) execute(stdout io.Writer) error {
	var changes []change
	for _, t := range p.targets {
		c, err := p.compute(t)
		if err != nil {
			return err
		}
		changes = append(changes, c)
	}
	verb := "configure"
	if p.opts.Remove {
		verb = "remove"
	}
	for _, c := range changes {
		if c.action == "" {
			fmt.Fprintf(stdout, "%s: %s: unchanged (%s)\n", verb, c.t.Path, c.t.What)
			continue
		}
		if p.opts.DryRun {
			fmt.Fprintf(stdout, "%s (dry run): %s: would be %s (%s)\n", verb, c.t.Path, c.action, c.t.What)
			fmt.Fprint(stdout, udiff.Unified(nameOr(c.old, c.t.Path), nameOr(c.new, c.t.Path), string(c.old), string(c.new)))
			continue
		}
		if err := apply(c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s: %s (%s)\n", verb, c.t.Path, c.action, c.t.What)
	}
	// Next steps only matter after a change; warnings always do.
	changed := slices.ContainsFunc(changes, func(c change) bool { return c.action != "" })
	for _, n := range p.notes {
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

// nameOr is how a unified diff names content that comes from or goes to
// path: /dev/null when there is no such file (nil), as diff -u -N does.
func nameOr(content []byte, path string) string {
	if content == nil {
		return "/dev/null"
	}
	return path
}

// compute decides what one file needs, without writing.
func (p *plan) compute(t target) (change, error) {
	old, err := readIfExists(t.Path)
	c := change{t: t, old: old}
	if err != nil {
		return c, err
	}
	if !p.opts.Remove {
		c.new, err = t.editor.Apply(old)
		if err != nil {
			return c, fmt.Errorf("%s: %w", t.Path, err)
		}
		switch {
		case old == nil:
			c.action = "created"
		case !bytes.Equal(old, c.new):
			c.action = "updated, backup in " + t.Path + backupSuffix
			if _, err := os.Lstat(t.Path + backupSuffix); err == nil {
				c.action = "updated, the backup " + t.Path + backupSuffix + " from before runc-shared is kept"
			}
		}
		return c, nil
	}
	if old == nil {
		return c, nil
	}
	// The backup is restored only when the file is still exactly what
	// configure made of it: otherwise the user's later edits would be lost.
	backup, err := readIfExists(t.Path + backupSuffix)
	if err != nil {
		return c, err
	}
	if backup != nil {
		made, err := t.editor.Apply(backup)
		if err == nil && bytes.Equal(made, old) {
			c.new, c.restore, c.action = backup, true, "restored from "+t.Path+backupSuffix
			return c, nil
		}
	}
	c.new, err = t.editor.Revert(old)
	if err != nil {
		return c, fmt.Errorf("%s: %w", t.Path, err)
	}
	switch {
	case c.new == nil:
		c.action = "removed"
	case !bytes.Equal(c.new, old):
		c.action = "entry removed"
		if backup != nil {
			c.action += "; the file changed since configure, so " + t.Path + backupSuffix + " is kept: compare it"
		}
	}
	return c, nil
}

// apply writes one change: backup first, then the new content. The errors
// of os.Remove name the operation and the file themselves.
func apply(c change) error {
	path := c.t.Path
	switch {
	case c.restore:
		if err := writeFile(path, path, c.new); err != nil {
			return err
		}
		return os.Remove(path + backupSuffix)
	case c.new == nil:
		return os.Remove(path)
	}
	if c.old != nil {
		if err := backupOnce(path, c.old); err != nil {
			return err
		}
	}
	return writeFile(path, path, c.new)
}

func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return b, nil // not nil for an empty file: os.ReadFile allocates before reading
}

// backupOnce writes data, the content of path, to path.runc-shared.bak
// unless a backup exists: that one holds the content from before
// runc-shared and must survive every later configure. The copy is written
// whole or not at all, so a crash never leaves a partial backup that later
// runs would keep.
func backupOnce(path string, data []byte) error {
	bak := path + backupSuffix
	if _, err := os.Lstat(bak); err == nil {
		return nil
	}
	if err := writeFile(bak, path, data); err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	return nil
}

// writeFile replaces path with data through atomicfile, durably: an engine
// reading it sees the old or the new content, never a mix, also after a
// crash. The mode and owner of like (path itself, or the file a backup
// copies) carry over; without it the file gets 0644 and missing parent
// directories 0755.
func writeFile(path, like string, data []byte) error {
	mode := os.FileMode(0o644)
	var owner []atomicfile.Option
	if fi, err := os.Stat(like); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = append(owner, atomicfile.Owner(int(st.Uid), int(st.Gid)))
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFileDurable(path, data, mode, owner...)
}
