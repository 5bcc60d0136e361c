// SPDX-License-Identifier: BSD-3-Clause
// Parses an HCL file with @cdktf/hcl2json (HashiCorp's hcl/v2 parser, the one Packer uses,
// compiled to WebAssembly) and prints it as JSON; a syntax error is printed and exits 1.
//   NODE_PATH=DIR/node_modules node hcl2json.js FILE.pkr.hcl
"use strict";
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");

const file = process.argv[2];
parse(file, fs.readFileSync(file, "utf8"))
        .then((json) => process.stdout.write(JSON.stringify(json)))
        .catch((err) => {
                process.stderr.write(`${err}\n`);
                process.exit(1);
        });
