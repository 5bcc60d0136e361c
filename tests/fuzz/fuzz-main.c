/* SPDX-License-Identifier: BSD-3-Clause */
/* Regression runner for the fuzz targets when libFuzzer is not linked (gcc builds): feeds every
 * file of the corpus directories (or files) given as arguments to LLVMFuzzerTestOneInput once. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus files are small seeds and crash reproducers; 1 MiB bounds a stray large file. */
#define FUZZ_MAX_INPUT (1024 * 1024)

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf;
        size_t n;

        if (!f) {
                fprintf(stderr, "cannot open %s\n", path);
                return -1;
        }
        buf = malloc(FUZZ_MAX_INPUT);
        if (!buf) {
                fclose(f);
                return -1;
        }
        n = fread(buf, 1, FUZZ_MAX_INPUT, f);
        fclose(f);
        /* an exact-size copy, so ASan sees reads past the end */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) {
                free(buf);
                return -1;
        }
        memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned runs = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "no corpus at %s\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        runs++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
                        if (run_file(path) < 0) {
                                closedir(d);
                                return 1;
                        }
                        runs++;
                }
                closedir(d);
        }
        printf("1..1\nok 1 - %u corpus input(s) ran without a crash\n", runs);
        return runs > 0 ? 0 : 1;
}
