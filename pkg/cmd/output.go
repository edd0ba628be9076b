package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Output formats every data-printing command accepts with -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// ValidateOutput checks an -o value against the formats a command supports.
func ValidateOutput(got string, allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{OutputTable, OutputJSON, OutputYAML}
	}
	if slices.Contains(allowed, got) {
		return nil
	}
	return UsageError{fmt.Errorf("unknown output format %q for -o; use one of %s", got, strings.Join(allowed, ", "))}
}

// PrintStructured writes v as JSON (indented) or YAML.
func PrintStructured(w io.Writer, format string, v any) error {
	switch format {
	case OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("output format %q is not structured", format)
}
