package meshchecks

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPageAllFollowsContinue(t *testing.T) {
	var seen []metav1.ListOptions
	got, err := pageAll(context.Background(), metav1.ListOptions{LabelSelector: "app=ztunnel"}, func(o metav1.ListOptions) ([]int, string, error) {
		seen = append(seen, o)
		page := len(seen)
		next := ""
		if page < 3 {
			next = fmt.Sprintf("token-%d", page)
		}
		return []int{page}, next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2] != 3 {
		t.Fatalf("items %v, want [1 2 3]", got)
	}
	if seen[0].ResourceVersion != "0" || seen[0].Continue != "" || seen[0].Limit != PageSize || seen[0].LabelSelector != "app=ztunnel" {
		t.Fatalf("first page options %+v", seen[0])
	}
	if seen[1].ResourceVersion != "" || seen[1].Continue != "token-1" || seen[2].Continue != "token-2" {
		t.Fatalf("later pages %+v %+v", seen[1], seen[2])
	}
}

func TestNamesTruncates(t *testing.T) {
	var items []string
	for i := range 13 {
		items = append(items, fmt.Sprintf("n%d", i))
	}
	if got, want := names(items), "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 3 more"; got != want {
		t.Fatalf("names = %q, want %q", got, want)
	}
}
