// Package version holds the release version and the commit, set at build
// time by the Makefile through -ldflags -X.
package version

// Version is the release of runc-shared.
var Version = "0.1.0"

// Commit is the git commit the binaries were built from.
var Commit = "unknown"
