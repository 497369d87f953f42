package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/BurntSushi/toml"
)

// keyPath names a key by its parts from the root and, inside a [[mounter]]
// rule, the rule's index from 0 (elem; -1 elsewhere or when not known): the
// TOML library names the keys of every rule alike.
type keyPath struct {
	elem  int
	parts []string
}

func top(k string) keyPath { return keyPath{elem: -1, parts: []string{k}} }

func (p keyPath) key(k string) keyPath {
	return keyPath{elem: p.elem, parts: append(p.parts[:len(p.parts):len(p.parts)], k)}
}

// String is the key as a user writes it: dotted, quoted where TOML needs it
// (annotation keys hold dots and slashes).
func (p keyPath) String() string { return toml.Key(p.parts).String() }

// indexed names a rule's key by the rule's place, from 1: mounter[2].mode.
func (p keyPath) indexed() string {
	if p.elem < 0 {
		return p.String()
	}
	s := fmt.Sprintf("mounter[%d]", p.elem+1)
	if len(p.parts) > 1 {
		s += "." + toml.Key(p.parts[1:]).String()
	}
	return s
}

func hasPrefix(key, prefix []string) bool {
	return len(key) >= len(prefix) && slices.Equal(key[:len(prefix)], prefix)
}

// maxProblems bounds the problems listed: each costs a parse of the file to
// find its line (lineOf), and a file of garbage has a problem on every line.
const maxProblems = 10

// error lists the problems in file order, each with its line where the TOML
// library knows it.
func (v *validator) error(file, src string) error {
	slices.SortStableFunc(v.probs, func(a, b problem) int { return cmp.Compare(a.at, b.at) })
	e := &Error{File: file}
	for i, p := range v.probs {
		if i == maxProblems {
			e.Problems = append(e.Problems, Problem{Msg: fmt.Sprintf("and %d more problems: fix these first", len(v.probs)-i)})
			break
		}
		line, key := 0, p.path.indexed()
		if p.at < len(v.keys) && lastDefinition(v.keys, p.at) {
			line = lineOf(src, v.keys[p.at])
		}
		if line > 0 {
			key = p.path.String()
		}
		e.Problems = append(e.Problems, Problem{Line: line, Key: key, Msg: p.msg})
	}
	return e
}

// find returns the index in keys of the first key at or below p, within
// p's rule when the key's rule is known; len(keys) when there is none. The
// keys of an inline array of tables do not say which table they are in:
// there find may return the key of another rule, which lastDefinition then
// refuses to give a line.
func (v *validator) find(p keyPath) int {
	for j, k := range v.keys {
		if (p.elem < 0 || v.rules[j] < 0 || v.rules[j] == p.elem) && hasPrefix(k, p.parts) {
			return j
		}
	}
	return len(v.keys)
}

// ruleOfKeys returns for each of keys the index from 0 of the [[mounter]]
// table it is in, by counting the tables' headers; -1 for a key outside
// them, and for every key when the rules are no [[mounter]] tables.
func ruleOfKeys(md *toml.MetaData, keys []toml.Key) []int {
	aot := md.Type("mounter") == "ArrayHash"
	rules, n := make([]int, len(keys)), -1
	for j, k := range keys {
		if aot && len(k) == 1 && k[0] == "mounter" {
			n++
		}
		rules[j] = -1
		if aot && k[0] == "mounter" {
			rules[j] = n
		}
	}
	return rules
}

// lastDefinition reports whether no key after keys[j] has the same name: the
// TOML library keeps the position of the last one only.
func lastDefinition(keys []toml.Key, j int) bool {
	return !slices.ContainsFunc(keys[j+1:], func(k toml.Key) bool { return slices.Equal(k, keys[j]) })
}

// errLine stops the decoding of lineOf at the key it looks for.
var errLine = errors.New("line of the key")

type stopHere struct{}

func (stopHere) UnmarshalTOML(any) error { return errLine }

// lineOf returns the line of the last definition of key in src, or 0. The
// TOML library keeps the position of each key to itself and gives it out in
// the ParseError for an error that an Unmarshaler returns: so lineOf decodes
// src into a type made for key, whose value at key returns one.
func lineOf(src string, key toml.Key) int {
	t := reflect.TypeOf(stopHere{})
	for i := len(key) - 1; i >= 0; i-- {
		if i == 0 && len(key) > 1 && key[0] == "mounter" {
			t = reflect.SliceOf(t) // the rules
		}
		t = reflect.StructOf([]reflect.StructField{{
			Name: "K",
			Type: t,
			Tag:  reflect.StructTag("toml:" + strconv.Quote(key[i])),
		}})
	}
	var pe toml.ParseError
	_, err := toml.Decode(src, reflect.New(t).Interface())
	// The library matches a field in any case when no key has its exact
	// name: LastKey tells the key it stopped at.
	if !errors.As(err, &pe) || pe.Message != errLine.Error() || pe.LastKey != key.String() {
		return 0
	}
	return pe.Position.Line
}
