package cmd

import (
	"errors"
	"testing"
)

func TestCheckAndPrecheckValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"check ok", (&CheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputJSON}, IstioNamespace: "istio-system"}}).Validate()},
		{"precheck ok", (&PrecheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}, IstioNamespace: "istio-system"}, Platform: "auto", IstioVersion: "1.27.3"}).Validate()},
	} {
		if tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"check wide", (&CheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: "wide"}, IstioNamespace: "istio-system"}}).Validate()},
		{"check negative sample", (&CheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}, IstioNamespace: "istio-system"}, CertSample: -1}).Validate()},
		{"precheck platform", (&PrecheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}, IstioNamespace: "istio-system"}, Platform: "mars", IstioVersion: "1.28"}).Validate()},
		{"precheck version", (&PrecheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}, IstioNamespace: "istio-system"}, Platform: "auto", IstioVersion: "2.0"}).Validate()},
		{"precheck namespace", (&PrecheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}}, Platform: "auto", IstioVersion: "1.28"}).Validate()},
	} {
		var u UsageError
		if !errors.As(tc.err, &u) {
			t.Errorf("%s: got %v, want a usage error", tc.name, tc.err)
		}
	}
	// "v1.28.1" names the minor 1.28: accepted (the parsing itself is tested in pkg/ambient).
	if err := (&PrecheckOptions{CheckRunFlags: CheckRunFlags{Output: OutputFlags{Format: OutputTable}, IstioNamespace: "istio-system"}, Platform: "auto", IstioVersion: "v1.28.1"}).Validate(); err != nil {
		t.Errorf("precheck --istio-version v1.28.1: %v", err)
	}
}
