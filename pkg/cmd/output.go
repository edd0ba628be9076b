package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats every data-printing command accepts with -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// TablePrinter is what a report implements to be printed with -o table. The
// table lives beside the type it prints (cilium-cli's status Format is the
// model); commands wrap library reports in a small type of their own when
// the library should not know about tables.
type TablePrinter interface {
	PrintTable(w io.Writer) error
}

// JSONStreamer is implemented by reports too large to encode in one piece:
// Print hands -o json to WriteJSON, which must write the same bytes
// PrintStructured would.
type JSONStreamer interface {
	WriteJSON(w io.Writer) error
}

// YAMLStreamer is JSONStreamer's counterpart for -o yaml.
type YAMLStreamer interface {
	WriteYAML(w io.Writer) error
}

// OutputFlags is the one -o flag of every command that prints data: bind it
// with AddFlags, check it in Validate, and print the report with Print.
//
//	o.Output = NewOutputFlags()          // table, json, yaml (the zero value means the same)
//	o.Output.AddFlags(cmd)               // -o/--output
//	if err := o.Output.Validate(); ...   // a UsageError (exit 2) for -o xml
//	return o.Output.Print(out, report)   // report implements TablePrinter
type OutputFlags struct {
	// Format is the -o value.
	Format string
	// Allowed lists the formats the command accepts, the first being the
	// default; empty means table, json and yaml.
	Allowed []string
}

// NewOutputFlags accepts allowed (default: table, json, yaml), the first
// being the default.
func NewOutputFlags(allowed ...string) OutputFlags {
	if len(allowed) == 0 {
		allowed = []string{OutputTable, OutputJSON, OutputYAML}
	}
	return OutputFlags{Format: allowed[0], Allowed: allowed}
}

// AddFlags registers -o/--output on cmd.
func (o *OutputFlags) AddFlags(cmd *cobra.Command) {
	if len(o.Allowed) == 0 {
		*o = NewOutputFlags()
	}
	cmd.Flags().StringVarP(&o.Format, "output", "o", o.Format, "output format: "+joinOr(o.Allowed))
}

func joinOr(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Validate checks -o against the allowed formats.
func (o *OutputFlags) Validate() error { return ValidateOutput(o.Format, o.Allowed...) }

// Table reports whether the human table was asked for (then progress and
// tables interleave; structured output is printed once, at the end).
func (o *OutputFlags) Table() bool { return o.Format == OutputTable || o.Format == "" }

// Print writes obj in the chosen format: its own table, or JSON/YAML
// (streamed when obj implements JSONStreamer/YAMLStreamer).
func (o *OutputFlags) Print(w io.Writer, obj any) error {
	switch o.Format {
	case OutputTable, "":
		tp, ok := obj.(TablePrinter)
		if !ok {
			return fmt.Errorf("%T has no table form; use -o json or -o yaml", obj)
		}
		return tp.PrintTable(w)
	case OutputJSON:
		if s, ok := obj.(JSONStreamer); ok {
			return s.WriteJSON(w)
		}
	case OutputYAML:
		if s, ok := obj.(YAMLStreamer); ok {
			return s.WriteYAML(w)
		}
	}
	return PrintStructured(w, o.Format, obj)
}

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
