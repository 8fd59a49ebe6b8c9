#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) int use_after_free(int i) {
    int *p = malloc(4 * sizeof(int)); free(p); return p[i];
}
__attribute__((noinline)) int overflow(int i) {
    int *p = malloc(4 * sizeof(int)); int v = p[4 + i]; free(p); return v;
}
int main(int argc, char **argv) {
    int i = atoi(argv[2]);
    if (strcmp(argv[1], "uaf") == 0) return use_after_free(i);
    if (strcmp(argv[1], "segv") == 0) { volatile int *q = 0; return *q; }
    return overflow(i);
}
