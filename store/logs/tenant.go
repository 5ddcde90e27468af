package logs

import (
	"context"
	"regexp"
)

// DefaultTenant owns the logs written without a tenant: by a server
// without API keys, by a key that names none, and every log stored before
// tenants existed.
const DefaultTenant = "default"

// tenantPattern is what a tenant name may be: it goes into storage keys,
// cache keys, Kafka headers and metric labels as it is.
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// TenantRule says what ValidTenant accepts, for error messages.
const TenantRule = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"

// ValidTenant reports whether s may name a tenant.
func ValidTenant(s string) bool { return tenantPattern.MatchString(s) }

type tenantsKey struct{}

// WithTenants returns ctx carrying the tenants a request acts for: the one
// it writes as, or the ones it reads. The caller has checked that the
// request may act for them.
func WithTenants(ctx context.Context, tenants []string) context.Context {
	return context.WithValue(ctx, tenantsKey{}, tenants)
}

// TenantsFrom returns the tenants ctx carries; without any, the default
// tenant alone.
func TenantsFrom(ctx context.Context) []string {
	if ts, ok := ctx.Value(tenantsKey{}).([]string); ok && len(ts) > 0 {
		return ts
	}
	return []string{DefaultTenant}
}

// TenantsSet returns the tenants ctx carries, and false when it carries
// none (a request refused before its tenants were decided).
func TenantsSet(ctx context.Context) ([]string, bool) {
	ts, ok := ctx.Value(tenantsKey{}).([]string)
	return ts, ok && len(ts) > 0
}

// TenantFrom returns the tenant a write acts for: the first ctx carries.
func TenantFrom(ctx context.Context) string { return TenantOrDefault(TenantsFrom(ctx)[0]) }

// TenantOrDefault is t, or the default tenant when t is empty.
func TenantOrDefault(t string) string {
	if t == "" {
		return DefaultTenant
	}
	return t
}

// ReadTenants is the tenants a read with ts sees: ts, or the default
// tenant alone when ts is empty, never every tenant.
func ReadTenants(ts []string) []string {
	if len(ts) == 0 {
		return []string{DefaultTenant}
	}
	return ts
}
