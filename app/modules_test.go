package app

import (
	"slices"
	"testing"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Role
	}{
		{"all", []Role{RoleProducer, RoleConsumer, RoleGateway}},
		{"ALL", []Role{RoleProducer, RoleConsumer, RoleGateway}},
		{"gateway", []Role{RoleGateway}},
		{"gateway, producer,gateway", []Role{RoleProducer, RoleGateway}},
		{"consumer,all", []Role{RoleProducer, RoleConsumer, RoleGateway}},
	} {
		got, err := ParseRoles(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseRoles(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", " , ", "ingester", "producer,querier"} {
		if got, err := ParseRoles(bad); err == nil {
			t.Errorf("ParseRoles(%q) = %v, want an error", bad, got)
		}
	}
}

// Every module a role needs starts, each after what it depends on, and
// nothing a role does not need starts at all.
func TestStartOrder(t *testing.T) {
	for _, tc := range []struct {
		roles []Role
		want  []module
	}{
		{[]Role{RoleProducer}, []module{modKafka, modProducer}},
		{[]Role{RoleConsumer}, []module{modKafka, modStore, modCache, modConsumer}},
		{[]Role{RoleGateway}, []module{modStore, modCache, modGateway}},
		{[]Role{RoleProducer, RoleGateway}, []module{modKafka, modProducer, modStore, modCache, modGateway}},
		{[]Role{RoleProducer, RoleConsumer, RoleGateway}, []module{modKafka, modProducer, modStore, modCache, modConsumer, modGateway}},
	} {
		got := startOrder(tc.roles)
		if !slices.Equal(got, tc.want) {
			t.Errorf("startOrder(%v) = %v, want %v", tc.roles, got, tc.want)
		}
	}
}

// The dependency map is a DAG whose every edge points at a known module,
// so startOrder is total.
func TestModuleGraph(t *testing.T) {
	deps := dependencies()
	for m, ds := range deps {
		for _, d := range ds {
			if _, ok := deps[d]; !ok {
				t.Errorf("%s depends on unknown module %s", m, d)
			}
		}
	}
	order := startOrder([]Role{RoleAll})
	for i, m := range order {
		for _, d := range deps[m] {
			if j := slices.Index(order, d); j < 0 || j > i {
				t.Errorf("%s starts before its dependency %s in %v", m, d, order)
			}
		}
	}
	if !slices.Contains(order, modAll) || len(order) != len(deps) {
		t.Errorf("all starts %v, want every module once", order)
	}
}
