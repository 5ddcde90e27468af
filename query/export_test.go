package query

// DecodeCursor reads a nextCursor, for the tests of package query_test
// that walk pages the way a client does.
var DecodeCursor = decodeCursor
