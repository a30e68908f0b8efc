/**
 * The npm package's name and version: the widget module name and version the kernel asks
 * for (`protocol.MODULE_NAME`, `protocol.MODULE_VERSION`), read from package.json so that
 * there is one place to change them.
 */

// The bundler resolves this at build time; TypeScript has no `require` without Node types.
declare function require(path: string): unknown;

interface PackageData {
  name: string;
  version: string;
}

const data = require('../package.json') as PackageData;

export const MODULE_NAME = data.name;
export const MODULE_VERSION = data.version;
