package migrate

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// JournalVersion is the format version written in every journal.
const JournalVersion = 1

// ReadJournal parses the journal annotation; ok is false when there is none.
func ReadJournal(annotations map[string]string) (j *Journal, ok bool, err error) {
	raw, ok := annotations[AnnotationJournal]
	if !ok {
		return nil, false, nil
	}
	j = &Journal{}
	if err := json.Unmarshal([]byte(raw), j); err != nil {
		return nil, true, fmt.Errorf("read annotation %s: %w; fix or remove it by hand", AnnotationJournal, err)
	}
	if j.Version != JournalVersion {
		return nil, true, fmt.Errorf("read annotation %s: journal version %d is not supported by this kubectl-ambient (want %d); upgrade the plugin", AnnotationJournal, j.Version, JournalVersion)
	}
	return j, true, nil
}

// newJournal records the previous value of every managed label and the
// changes about to be made.
func newJournal(now time.Time, current map[string]string, ch LabelChanges, waypoint string) *Journal {
	j := &Journal{Version: JournalVersion, Time: now.UTC().Truncate(time.Second), Previous: map[string]*string{},
		Added: maps.Clone(ch.Add), Removed: append([]string(nil), ch.Remove...), Waypoint: waypoint}
	for _, k := range managedLabels {
		if v, ok := current[k]; ok {
			j.Previous[k] = &v
		} else {
			j.Previous[k] = nil
		}
	}
	return j
}

// restoreLabels is the merge-patch label map that puts the journaled values
// back: previous values set, labels that were absent removed (nil).
func (j *Journal) restoreLabels(current map[string]string) map[string]any {
	out := map[string]any{}
	for k, prev := range j.Previous {
		cur, has := current[k]
		switch {
		case prev == nil && has:
			out[k] = nil
		case prev != nil && (!has || cur != *prev):
			out[k] = *prev
		}
	}
	return out
}

func (j *Journal) encode() string {
	b, _ := json.Marshal(j) // a struct of strings and maps always encodes
	return string(b)
}
