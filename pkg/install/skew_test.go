package install

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckSkew(t *testing.T) {
	tests := []struct {
		name    string
		istiod  string
		dp      map[string]string
		wantErr string
	}{
		{"same version", "1.28.0", map[string]string{"cni": "1.28.0", "ztunnel": "1.28.0"}, ""},
		{"one minor behind", "1.29.0", map[string]string{"cni": "1.28.3", "ztunnel": "1.28.0"}, ""},
		{"older patch same minor", "1.28.2", map[string]string{"ztunnel": "1.28.1"}, ""},
		{"not installed", "1.28.0", map[string]string{"ztunnel": ""}, ""},
		{"no istiod", "", map[string]string{"ztunnel": "1.29.0"}, ""},
		{"ztunnel newer minor", "1.28.0", map[string]string{"ztunnel": "1.29.0"}, "ztunnel 1.29.0 would be newer than istiod 1.28.0"},
		{"cni newer patch", "1.28.0", map[string]string{"cni": "1.28.1"}, "cni 1.28.1 would be newer than istiod 1.28.0"},
		{"two minors behind", "1.29.0", map[string]string{"cni": "1.27.0"}, "cni 1.27.0 would be 2 minor versions behind istiod 1.29.0"},
		{"major mismatch", "2.0.0", map[string]string{"ztunnel": "1.29.0"}, "different major versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSkew(tt.istiod, tt.dp)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrSkew) {
				t.Fatalf("error = %v, want ErrSkew containing %q", err, tt.wantErr)
			}
		})
	}
}
