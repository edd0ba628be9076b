// Package version holds the build's version, stamped by the linker:
//
//	go build -ldflags "-X github.com/kubectl-ambient/kubectl-ambient/pkg/version.Version=v0.1.0 ..."
package version

import "runtime"

// Set by -ldflags at release time; the defaults describe a development build.
var (
	Version   = "v0.0.0-dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// Info is the client's build information as printed by `kubectl ambient version`.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build information of this binary.
func Get() Info {
	return Info{
		Version:   Version,
		Commit:    Commit,
		BuildDate: BuildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}
