package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// Recovery makes the recorded volumes of a restarted mounter live again.
//
// The FUSE daemon of every volume is a process of the mounter: when the
// mounter dies, every staging mount and every publish bind of it on the node
// stays behind dead ("Transport endpoint is not connected"), and so does
// each pod's bind of its publish target. A new server for the rule finds the
// volumes in its records and, for each one whose mount is dead or missing,
// mounts the staging path again (after detaching the dead mount there), then
// binds each publish target from it. A live mount is left alone.
//
// A dead publish target is not detached: a pod's bind of the target is a
// copy of that very mount, which an unmount on the node never reaches. A
// bind made on top of it does: the target is a shared mount, and a mount on
// a shared mount propagates to its peers and slaves (mount_namespaces(7),
// "Shared subtrees"), so every pod whose bind is rslave (Kubernetes'
// HostToContainer) sees the new mount stacked on its dead one, without a
// restart. The dead binds of earlier recoveries stay too: a consumer that
// (re)started after one of them bound that recovery's mount, which only a
// bind on top of it reaches; so a target holds one dead mount more per
// restart of its mounter. Unpublish removes the whole stack.

// RecoverPolicy bounds the automatic retries of volumes that could not be
// made live: the source is unreachable, the staging directory is gone.
type RecoverPolicy struct {
	// Initial is the delay before the second attempt; each further delay
	// doubles, up to Max.
	Initial, Max time.Duration
	// Attempts is the number of passes in all, the first included; after
	// it the volume waits for the next server start or `mounter recover`.
	Attempts int
	// Workers is the number of volumes made again at once.
	Workers int
}

// defaultRecoverPolicy tries ten times over about six minutes (delays 1 s,
// 2 s, 4 s ... capped at 2 min).
var defaultRecoverPolicy = RecoverPolicy{Initial: time.Second, Max: 2 * time.Minute, Attempts: 10, Workers: 16}

// delay is the wait after attempt n (1-based).
func (p RecoverPolicy) delay(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// mountState is what a recorded mount point holds.
type mountState int

const (
	stateMissing mountState = iota // nothing mounted there
	stateLive                      // answers statfs
	stateDead                      // its FUSE daemon is gone
	stateHung                      // does not answer statfs in time
)

func (st mountState) String() string {
	return [...]string{"missing", "live", "dead", "hung"}[st]
}

// stateAt looks at the top mount at path, a resolved path.
func (s *Server) stateAt(path string) (mountState, error) {
	ms, err := s.Mounter.MountsAt(path)
	if err != nil || len(ms) == 0 {
		return stateMissing, err
	}
	err = s.statfs(path)
	switch {
	case deadMount(err):
		return stateDead, nil
	case errors.Is(err, errStatTimeout):
		return stateHung, nil
	}
	// Another error (EACCES of a FUSE daemon that checks permissions)
	// comes from a daemon that answers.
	return stateLive, nil
}

func (s *Server) statfs(path string) error {
	if s.statfsFunc != nil {
		return s.statfsFunc(path)
	}
	_, err := statfs(path)
	return err
}

// recoverOnce makes every recorded volume of this server's rule(s) that
// want takes live, when it is not: one pass, workers volumes at a time.
// Records that cannot be read come back as results with an empty
// VolumeID: they are reported, never removed.
func (s *Server) recoverOnce(ctx context.Context, want func(*Record) bool, workers int) []VolumeResult {
	recs, errs := s.records.List()
	var out []VolumeResult
	for _, err := range errs {
		out = append(out, VolumeResult{err: err})
	}
	// With --rule, the server recovers the records of that rule only.
	recs = slices.DeleteFunc(recs, func(r *Record) bool { return (s.RuleName != "" && r.Rule != s.RuleName) || !want(r) })
	results := make([]VolumeResult, len(recs))
	busy := make(chan struct{}, max(1, workers)) // a token per volume in progress
	var wg sync.WaitGroup
	for i, r := range recs {
		busy <- struct{}{}
		wg.Go(func() {
			results[i] = s.recoverVolume(ctx, r.VolumeID)
			<-busy
		})
	}
	wg.Wait()
	return append(out, results...)
}

// Recover runs recovery passes until every recorded volume of the server's
// rule(s) is live, the policy's attempts are spent or ctx ends. Volumes
// that fail get the failure in their record and are tried again after a
// growing delay; the others are not touched again. It returns nil when
// every volume is live, else an error that names what is not.
func (s *Server) Recover(ctx context.Context, p RecoverPolicy) error {
	start := time.Now()
	want := func(*Record) bool { return true }
	for attempt := 1; ; attempt++ {
		results := s.recoverOnce(ctx, want, p.Workers)
		failed := map[string]error{}
		var unreadable []error
		remounted, rebound := 0, 0
		for _, r := range results {
			switch {
			case r.err != nil && r.VolumeID == "":
				s.Log.Errorf("recovery: %v: the record is kept; fix or remove it", r.err)
				unreadable = append(unreadable, r.err)
			case r.err != nil:
				failed[r.VolumeID] = r.err
			default:
				if r.Remounted {
					remounted++
				}
				rebound += r.Rebound
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var next time.Time // zero: the attempts are spent
		if attempt < p.Attempts {
			next = time.Now().Add(p.delay(attempt))
		}
		for id, err := range failed {
			s.noteFailure(ctx, id, err, next, false)
		}
		s.Log.WithFields(logrus.Fields{"attempt": attempt, "took": time.Since(start).Round(time.Millisecond).String()}).
			Infof("recovery: %d volumes mounted again, %d targets bound again, %d failed, %d records unreadable",
				remounted, rebound, len(failed), len(unreadable))
		if len(failed) == 0 {
			if len(unreadable) > 0 {
				return fmt.Errorf("%d records cannot be read: %w", len(unreadable), errors.Join(unreadable...))
			}
			return nil
		}
		if next.IsZero() {
			return fmt.Errorf("volumes not live after %d attempts (kept for the next start of the server or `mounter recover`): %s",
				attempt, strings.Join(slices.Sorted(maps.Keys(failed)), ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
		want = func(r *Record) bool { return failed[r.VolumeID] != nil }
	}
}

// RecoverNow runs one recovery pass over the records of rule ("" for all
// of the server's) and keeps each failure in its record, for `mounter
// recover`. A retry the automatic recovery has scheduled stays scheduled.
func (s *Server) RecoverNow(ctx context.Context, rule string) []VolumeResult {
	results := s.recoverOnce(ctx, func(r *Record) bool { return rule == "" || r.Rule == rule }, defaultRecoverPolicy.Workers)
	for i, r := range results {
		if r.err == nil {
			continue
		}
		results[i].Error = r.err.Error()
		if r.VolumeID != "" {
			s.noteFailure(ctx, r.VolumeID, r.err, time.Time{}, true)
		}
	}
	return results
}

// noteFailure logs a volume's failure and keeps it in its record. next is
// when the automatic recovery tries again (zero: it has given up); manual
// keeps the retry already scheduled.
func (s *Server) noteFailure(ctx context.Context, id string, rerr error, next time.Time, manual bool) {
	unlock, err := s.lockVolume(ctx, id)
	if err != nil {
		return
	}
	defer unlock()
	rec, err := s.records.Read(id)
	if err != nil || rec == nil {
		return // unstaged meanwhile, or reported with the other unreadable ones
	}
	if manual && rec.Recovery != nil && rec.Recovery.Next.After(time.Now()) {
		next = rec.Recovery.Next
	}
	rec.Recovery = rec.Recovery.Failed(rerr, time.Now(), next)
	e := s.Log.WithFields(logrus.Fields{"volume": id, "attempt": rec.Recovery.Attempts})
	if manual && next.IsZero() {
		e.Errorf("recovery: %v; kept for the next `mounter recover` or start of the server", rerr)
	} else if next.IsZero() {
		e.Errorf("recovery: %v; giving up until the server restarts or `mounter recover` runs", rerr)
	} else {
		e.Errorf("recovery: %v; trying again in %v", rerr, time.Until(next).Round(time.Second))
	}
	if err := s.records.Write(rec); err != nil {
		s.Log.WithField("volume", id).Errorf("recovery: %v", err)
	}
}

// recoverVolume makes one volume live again, under its lock.
func (s *Server) recoverVolume(ctx context.Context, id string) VolumeResult {
	res := VolumeResult{VolumeID: id}
	unlock, err := s.lockVolume(ctx, id)
	if err != nil {
		return VolumeResult{VolumeID: id, err: err}
	}
	defer unlock()
	// A server killed while writing this record left its temporary file;
	// every writer of the record holds its lock, across processes.
	atomicfile.RemoveLeftovers(s.records.Path(id))
	rec, err := s.records.Read(id)
	if err != nil || rec == nil {
		return VolumeResult{VolumeID: id, err: err} // nil: unstaged since the list was read
	}
	res.Remounted, res.Rebound, res.err = s.recoverRecord(ctx, rec)
	if res.err != nil {
		return res
	}
	if res.Remounted || rec.Recovery != nil {
		if res.Remounted {
			rec.PID = s.pid()
		}
		rec.Recovery = nil
		res.err = s.records.Write(rec)
	}
	if res.Remounted || res.Rebound > 0 {
		s.Log.WithField("volume", id).Infof("recovery: volume live again (mounted again: %v, targets bound again: %d)", res.Remounted, res.Rebound)
	}
	return res
}

// recoverRecord makes the mounts of rec live again; the caller holds the
// volume's lock. It goes on with the other targets when one fails, and
// returns the failures joined.
func (s *Server) recoverRecord(ctx context.Context, rec *Record) (remounted bool, rebound int, err error) {
	rule := s.Config.Rule(rec.Rule)
	if rule == nil {
		return false, 0, fmt.Errorf("the record names rule %q, which %s no longer has: restore the rule or unstage the volume", rec.Rule, s.Config.Name())
	}
	allow := rule.Propagate
	if rec.Staging == "" {
		return s.recoverInline(ctx, rec, allow)
	}
	staging, err := ResolvePath("staging path", rec.Staging, allow)
	if err != nil {
		return false, 0, fmt.Errorf("staging path of volume %s: %w", rec.VolumeID, err)
	}
	if staging != rec.Staging {
		return false, 0, fmt.Errorf("the staging path %s now resolves to %s: left alone", rec.Staging, staging)
	}
	base := recordVolume(rec)
	base.Subdir = ""
	// Nothing binds the staging path but the targets, which are handled
	// below: a dead mount there goes.
	if remounted, err = s.remount(ctx, base, staging); err != nil {
		return false, 0, err
	}
	src, err := s.volumeDir(staging, rec.Subdir, allow)
	if err != nil {
		return remounted, 0, err
	}
	// On top of the dead mount: see the top of this file for why.
	// Bind's errors name the source and the target, as NodePublishVolume
	// returns them.
	rebound, err = s.redoTargets(rec, allow, func(p string, t mountrec.Target, _ mountState) error {
		return s.Mounter.Bind(src, p, t.ReadOnly)
	})
	return remounted, rebound, err
}

// remount makes the mount of v at path, a resolved mount point, live
// again: a live mount is left alone, a hung one refused (its daemon may
// still answer), dead ones are detached first. It reports whether it
// mounted.
func (s *Server) remount(ctx context.Context, v Volume, path string) (bool, error) {
	st, err := s.redoState(path)
	if err != nil || st == stateLive {
		return false, err
	}
	if st == stateDead {
		if err := s.detachDead(path); err != nil {
			return false, err
		}
	}
	return true, s.mountHelper(ctx, v, path)
}

// detachDead detaches the dead mounts stacked at path, top first, until
// what is there answers or nothing is left.
func (s *Server) detachDead(path string) error {
	for range 64 {
		st, err := s.stateAt(path)
		if err != nil || st != stateDead {
			return err
		}
		if err := s.Mounter.Detach(path); err != nil {
			return fmt.Errorf("detach the dead mount at %s: %w", path, err)
		}
	}
	return fmt.Errorf("%s: still dead after detaching 64 mounts there", path)
}

// redoState is stateAt for a mount that recovery makes again when it is
// dead or missing: a hung one is an error (its daemon may still answer).
func (s *Server) redoState(path string) (mountState, error) {
	st, err := s.stateAt(path)
	if err == nil && st == stateHung {
		err = fmt.Errorf("the mount at %s does not answer statfs: left alone, check its daemon", path)
	}
	return st, err
}

// Remount makes the mount of v at target live again with m, as recovery
// does with a staging mount: `mounter recover` makes routed mounts again
// with it. target is a resolved path.
func Remount(ctx context.Context, m Mounter, v Volume, target string) (bool, error) {
	return (&Server{Mounter: m}).remount(ctx, v, target)
}

// redoTargets runs redo on each target of rec whose mount is dead or
// missing, once the hidden directories a killed withBaseFor left beside it
// are gone; it goes on with the other targets when one fails, and returns
// how many it made again and the failures joined.
func (s *Server) redoTargets(rec *Record, allow []string, redo func(p string, t mountrec.Target, st mountState) error) (int, error) {
	n := 0
	var errs []error
	for _, t := range rec.Targets {
		// A target's directory is made again when only that is gone (as
		// NodePublishVolume would); a target whose parent is gone (the
		// pod's volume directory) cannot be recovered.
		p, err := makeDir("target path", t.Path, allow)
		if err == nil && p != t.Path {
			err = fmt.Errorf("the target path %s now resolves to %s: left alone", t.Path, p)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, removeRecoverDirs(filepath.Dir(p)))
		st, err := s.redoState(p)
		if err == nil && st != stateLive {
			if err = redo(p, t, st); err == nil {
				n++
			}
		}
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// recoverInline mounts an inline volume again at its target. On a dead
// mount, the helper mounts the volume aside (withBaseFor) and the result is
// bound on top of the dead one, for the pods' binds to see it; mount
// helpers refuse a mount point they cannot stat.
func (s *Server) recoverInline(ctx context.Context, rec *Record, allow []string) (bool, int, error) {
	n, err := s.redoTargets(rec, allow, func(p string, t mountrec.Target, st mountState) error {
		if st == stateMissing {
			return s.mountHelper(ctx, recordVolume(rec), p)
		}
		return s.withBaseFor(ctx, rec, p, func(dir string) error { return s.Mounter.Bind(dir, p, t.ReadOnly) })
	})
	return n > 0, 0, err
}

// MountState says what the top mount at path, a resolved host path, is:
// "missing", "live", "dead" (its FUSE daemon is gone) or "hung" (it does
// not answer statfs in time). `mounter` on the host checks recorded
// mounts with it.
func MountState(path string) (string, error) {
	s := &Server{Mounter: SystemMounter{}}
	st, err := s.stateAt(path)
	return st.String(), err
}

// withBaseFor runs fn with rec's volume mounted at a directory of its own,
// to be bound onto target. A server mounts it below its private work
// directory, which the host never sees. On the host (`mounter recover` for
// a mounter without a server, HelperPID set) the helper runs inside the
// mounter, whose mounts reach the host only below the rule's shared paths:
// there the volume is mounted in a hidden directory beside target, which is
// unmounted and removed once fn has bound it.
func (s *Server) withBaseFor(ctx context.Context, rec *Record, target string, fn func(dir string) error) error {
	v := recordVolume(rec)
	if s.HelperPID == 0 {
		return s.withBase(ctx, v, fn)
	}
	return s.mountedAt(ctx, v, filepath.Dir(target), recoverDirPrefix, fn)
}

// recoverDirPrefix starts the names of withBaseFor's hidden directories.
const recoverDirPrefix = ".runc-shared-recover-"

// removeRecoverDirs detaches and removes the hidden directories that a
// withBaseFor killed between its mount and its unmount left in dir, a
// target's parent: kubelet's clean-up of the pod's volume directory trips
// on a mount there. None is in use: dir is the directory of one volume's
// target, and withBaseFor runs under the volume's lock, which a server and
// the host's `mounter recover` share (lockVolume). Only directories of that
// name are touched, and only emptied ones removed.
func removeRecoverDirs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("look for left-over mount points in %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), recoverDirPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		for range 64 {
			if err = hostmount.Detach(p); err != nil {
				break
			}
		}
		switch {
		case err == nil:
			err = errors.New("still mounted after 64 detaches")
		case errors.Is(err, unix.EINVAL): // no mount left there
			err = os.Remove(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove the left-over mount point %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
