package dev.kaas.matrix;

import java.nio.charset.StandardCharsets;

/**
 * The matrix's records, byte for byte the same in every client's language (tests/src/matrix.rs has the
 * reference): key {@code key-<i mod 32>}; value {@code v<i>/} followed by 64 + (i mod 193) bytes, byte j being
 * (31 i + j) mod 256, so that every byte value occurs and the lengths vary.
 */
final class Records {
    static byte[] key(int i) {
        return ("key-" + (i % 32)).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] value(int i) {
        byte[] prefix = ("v" + i + "/").getBytes(StandardCharsets.UTF_8);
        int n = 64 + i % 193;
        byte[] v = new byte[prefix.length + n];
        System.arraycopy(prefix, 0, v, 0, prefix.length);
        for (int j = 0; j < n; j++) {
            v[prefix.length + j] = (byte) ((31 * i + j) & 0xff);
        }
        return v;
    }

    private Records() {}
}
