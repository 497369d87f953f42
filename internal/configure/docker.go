package configure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func (p *plan) docker(o options) {
	p.targets = []target{{
		Path: o.ConfigFile,
		What: fmt.Sprintf("runtime %q", o.RuntimeName),
		editor: &dockerEditor{name: o.RuntimeName, runtime: dockerRuntime{
			Path: o.RuntimePath,
			// Docker puts runtimeArgs before the runtime's own global
			// options, where runc-shared looks for this flag.
			RuntimeArgs: []string{"--" + runtime.ConfigFlag + "=" + o.configArg()},
		}},
	}}
	if o.Remove {
		p.targets[0].Next = func(result []byte) string { return dockerRemoveStep(o.RuntimeName, result) }
		return
	}
	p.notes = append(p.notes,
		"next: reload dockerd (systemctl reload docker, or SIGHUP: daemon.json runtimes are reloadable; runtimes given with dockerd --add-runtime are dropped by a reload, so define them in one place)",
		fmt.Sprintf("then: docker run --runtime %s --cap-add SYS_ADMIN --device /dev/fuse -e %s=NAME ... (Docker before 24 passes no annotations to the runtime; Docker 24 and later also take --annotation %s=NAME)", o.RuntimeName, spec.EnvMounter, spec.AnnotationMounter))
}

// dockerRemoveStep is the step that drops runtime name from a running dockerd
// once daemon.json holds result (nil: the file is gone). dockerd reloads its
// runtimes on SIGHUP only when the file has a "runtimes" key (reloadPlatform
// in moby's daemon/reload_unix.go tests IsValueSet("runtimes")): without the
// key a reload keeps every runtime it had, so only a restart drops it.
func dockerRemoveStep(name string, result []byte) string {
	if doc, err := parseObject(result); err == nil {
		if _, ok := doc.vals["runtimes"]; ok {
			return "next: reload dockerd (systemctl reload docker, or SIGHUP) to drop runtime " + strconv.Quote(name)
		}
	}
	return fmt.Sprintf("next: restart dockerd (systemctl restart docker) to drop runtime %q: daemon.json has no \"runtimes\" key any more, "+
		"and dockerd reloads runtimes on SIGHUP only when it has one, so a reload keeps %q. "+
		"Stop the containers of runtime %q first; a restart stops the others too unless live-restore is on", name, name, name)
}

// dockerRuntime is one entry of daemon.json "runtimes".
type dockerRuntime struct {
	Path        string   `json:"path"`
	RuntimeArgs []string `json:"runtimeArgs,omitempty"`
}

// dockerEditor edits daemon.json: runtimes.<name>. Other keys and runtimes
// keep their order and content.
type dockerEditor struct {
	name    string
	runtime dockerRuntime
}

func (e *dockerEditor) Apply(old []byte) ([]byte, error) {
	want, _ := json.Marshal(e.runtime) // a struct of strings always encodes
	return e.edit(old, want)
}

func (e *dockerEditor) Revert(cur []byte) ([]byte, error) {
	return e.edit(cur, nil)
}

// edit sets runtimes.<name> of daemon.json data to entry, or removes it when
// entry is nil, and returns the file with the result: data itself when
// nothing changes, nil when no key is left, and without "runtimes" when it
// is left empty.
func (e *dockerEditor) edit(data []byte, entry json.RawMessage) ([]byte, error) {
	doc, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	rts, err := doc.object("runtimes")
	if err != nil {
		return nil, err
	}
	have, ok := rts.vals[e.name]
	if entry == nil && !ok || entry != nil && ok && jsonEqual(have, entry) {
		return data, nil
	}
	ind := indentOf(data)
	if entry == nil {
		rts.del(e.name)
	} else {
		var indented bytes.Buffer
		_ = json.Indent(&indented, entry, ind+ind, ind) // Marshal's output is valid JSON
		rts.set(e.name, indented.Bytes())
	}
	if len(rts.keys) == 0 {
		doc.del("runtimes")
	} else {
		doc.set("runtimes", rts.format(ind, 1))
	}
	if len(doc.keys) == 0 {
		return nil, nil
	}
	return append(doc.format(ind, 0), '\n'), nil
}

// jsonObject is a JSON object that keeps its key order; values stay raw.
type jsonObject struct {
	keys []string
	vals map[string]json.RawMessage
}

// parseObject reads a JSON object; empty input is an empty object (Docker
// treats a missing daemon.json the same way).
func parseObject(data []byte) (*jsonObject, error) {
	o := &jsonObject{vals: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("parse JSON: want an object at the top")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("parse JSON: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("parse JSON at key %q: %w", key, err)
		}
		o.set(key, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse JSON: data after the top-level object")
	}
	return o, nil
}

// object returns the member key as an object (empty when missing).
func (o *jsonObject) object(key string) (*jsonObject, error) {
	sub, err := parseObject(o.vals[key]) // a missing key is nil: empty
	if err != nil {
		return nil, fmt.Errorf("%q is not a JSON object; fix it by hand", key)
	}
	return sub, nil
}

func (o *jsonObject) set(key string, v json.RawMessage) {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
}

func (o *jsonObject) del(key string) {
	delete(o.vals, key)
	o.keys = slices.DeleteFunc(o.keys, func(k string) bool { return k == key })
}

// format writes one member per line at nesting depth; each value keeps
// its original text, so untouched parts of a file keep their layout. edit
// drops an object left empty instead of formatting it.
func (o *jsonObject) format(ind string, depth int) json.RawMessage {
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range o.keys {
		kb, _ := json.Marshal(k)
		b.WriteString(strings.Repeat(ind, depth+1))
		b.Write(kb)
		b.WriteString(": ")
		b.Write(o.vals[k])
		if i < len(o.keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat(ind, depth) + "}")
	return b.Bytes()
}

// indentOf returns the indentation of the first indented line, so that a
// file keeps its style; four spaces for a new file.
func indentOf(data []byte) string {
	for _, l := range strings.Split(string(data), "\n")[1:] {
		if t := strings.TrimLeft(l, " \t"); t != l && t != "" {
			return l[:len(l)-len(t)]
		}
	}
	return "    "
}

// jsonEqual compares two JSON values by content.
func jsonEqual(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
