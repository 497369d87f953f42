module github.com/runc-shared/runc-shared

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/moby/sys/mountinfo v0.7.3
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sys v0.50.0
)

require github.com/cyphar/filepath-securejoin v0.7.0
