package main

import "fmt"

// key and value are the matrix's records, byte for byte the same in every client's language (tests/src/matrix.rs
// has the reference): key "key-<i mod 32>"; value "v<i>/" followed by 64 + (i mod 193) bytes, byte j being
// (31 i + j) mod 256, so that every byte value occurs and the lengths vary.
func key(i int) []byte {
	return []byte(fmt.Sprintf("key-%d", i%32))
}

func value(i int) []byte {
	v := []byte(fmt.Sprintf("v%d/", i))
	for j := 0; j < 64+i%193; j++ {
		v = append(v, byte((31*i+j)&0xff))
	}
	return v
}
