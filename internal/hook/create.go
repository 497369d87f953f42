package hook

import (
	"fmt"
	"path/filepath"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// createRuntime verifies a matching mounter's propagation and registers it.
func (r *run) createRuntime() error {
	st := r.state
	if st.PID <= 0 {
		return fmt.Errorf("container %s: the state on stdin has no pid; run mount-hook at createRuntime, where the runtime passes the container's pid", st.ID)
	}
	doc, err := spec.Load(filepath.Join(st.Bundle, "config.json"))
	if err != nil {
		return fmt.Errorf("container %s: %w", st.ID, err)
	}
	rule := spec.FindRule(r.cfg.Mounters, doc.Spec)
	if rule == nil {
		r.log.Debug("no mounter rule matches")
		return nil
	}
	// The wrapper enforces the policy for containers it starts; for one that
	// an engine started with the hook from hooks.d, this is the only gate
	// before the registry routes mounts to it.
	if err := spec.CheckPolicy(rule, doc.Spec); err != nil {
		return err
	}
	// The wrapper bound each source at a staging path for runc; runc has
	// made its copies in the container's namespace, so the host's are
	// detached now, whatever the outcome: a refused container leaves
	// nothing on the host.
	staging, err := spec.StagingDir(r.cfg.StateDir, st.ID)
	if err != nil {
		return err
	}
	defer func() {
		if err := hostmount.Unstage(staging); err != nil {
			r.log.Warnf("%v", err)
		}
	}()
	for p := range spec.StagedSources(doc.Spec) {
		if filepath.Dir(p) != staging {
			return fmt.Errorf("container %s: bind source %s is not staged in %s: the annotation %s was not written by runc-shared",
				st.ID, p, staging, spec.AnnotationStagedSources)
		}
	}
	if rule.Mode != spec.ModePreload {
		if err := verifyPropagation(r.tablesOf(st.PID), st.Bundle, doc.Spec, rule); err != nil {
			return err
		}
	}
	start, err := registry.ProcStart(st.PID)
	if err != nil {
		return fmt.Errorf("container %s: %w", st.ID, err)
	}
	rec := &registry.Record{
		ID:          st.ID,
		Name:        rule.Name,
		PID:         st.PID,
		PIDStart:    start,
		Bundle:      st.Bundle,
		Runtime:     r.runtime(),
		RuntimeRoot: r.opts.Root,
		FSTypes:     rule.FSTypes,
		Propagate:   rule.Propagate,
		Mode:        rule.Mode,
		Created:     r.Now().UTC(),
	}
	if err := registry.New(r.cfg.StateDir).Write(rec); err != nil {
		return fmt.Errorf("register mounter %s: %w; check that the state-dir %s is writable", st.ID, err, r.cfg.StateDir)
	}
	r.log.Infof("registered mounter of rule %q, pid %d, runtime %s", rule.Name, st.PID, rec.Runtime)
	return nil
}

// runtime returns the delegate runtime for the record: --runtime when the
// wrapper injected the hook, else the configured runtime resolved on PATH
// (a hook from hooks.d does not know which runtime the engine used).
func (r *run) runtime() string {
	if r.opts.Runtime != "" {
		return r.opts.Runtime
	}
	p, err := runtime.FindRuntime(r.cfg.Runtime, "")
	if err != nil {
		r.log.Warnf("recording runtime %q unresolved: %v", r.cfg.Runtime, err)
		return r.cfg.Runtime
	}
	return p
}
