package store_test

import (
	"context"
	"strings"
	"testing"
)

// TestIdentityNamesClusterAndDatabase: two databases of one cluster have
// different identities, one database always the same.
func TestIdentityNamesClusterAndDatabase(t *testing.T) {
	a, urlA := open(t)
	b, _ := open(t)
	ctx := context.Background()
	idA, err := a.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := b.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if idA == idB {
		t.Errorf("two databases share the identity %q", idA)
	}
	system, name, ok := strings.Cut(idA, "/")
	if !ok || system == "" || system == "0" || !strings.Contains(urlA, "/"+name+"?") {
		t.Errorf("identity %q does not name the cluster and the database of %s", idA, urlA)
	}
	if sysB, _, _ := strings.Cut(idB, "/"); sysB != system {
		t.Errorf("one cluster, two system identifiers: %q and %q", idA, idB)
	}
	again, err := openURL(t, urlA).Identity(ctx)
	if err != nil || again != idA {
		t.Errorf("the same database reopened has identity %q (%v), want %q", again, err, idA)
	}
}
