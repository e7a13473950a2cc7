// wgsl_reflect's main entry (wgsl_reflect.node.js) breaks under ESM; its ES module build is imported by path,
// which the package's own typings do not cover: give that path the package's types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
