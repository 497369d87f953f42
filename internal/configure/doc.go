// Package configure registers runc-shared with a container engine, the way
// `nvidia-ctk runtime configure` does: `mounter configure --engine
// docker|containerd|podman|crio`.
//
// Each engine is a list of file edits (the engine's configuration file, and
// for Podman and CRI-O the two hooks.d files). One transaction applies them:
//
//   - configure computes the new content; an unchanged file is not written,
//     so running it twice changes nothing the second time;
//   - before the first change to an existing file it copies the file to
//     FILE.runc-shared.bak, and never overwrites an existing backup (that
//     one holds the content from before runc-shared);
//   - files are replaced through internal/atomicfile (temp file, fsync,
//     rename), keeping mode and owner: an engine that reads its
//     configuration while we write must never see half a file;
//   - --dry-run prints the change as a unified diff and writes nothing;
//   - --remove restores the backup byte for byte when the file is still
//     exactly what configure made of it, and otherwise takes runc-shared's
//     entry out of the current content, keeping the user's later edits.
//
// TOML files (containerd, Podman, CRI-O) are edited as text, not decoded and
// re-encoded: TOML libraries drop comments and reorder tables, and an
// operator's containerd config.toml is full of both. The added lines sit
// between two marker comments, so removal deletes exactly them; each result
// is parsed again to prove it is still valid TOML with the intended values.
// daemon.json is JSON: keys keep their order, values their content; only the
// indentation may change.
package configure
