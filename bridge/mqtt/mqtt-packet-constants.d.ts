/** mqtt-packet's protocol tables (a CommonJS module without types of its own); the reader uses these two. */
declare module 'mqtt-packet/constants.js' {
  const constants: {
    /** Property identifier → property name [MQTT 5 §2.2.2.2]. */
    readonly propertiesCodes: Readonly<Record<number, string>>;
    /** Property name → how its value is encoded ('byte', 'int8', 'int16', 'int32', 'var', 'string', 'pair', 'binary'). */
    readonly propertiesTypes: Readonly<Record<string, string>>;
  };
  export default constants;
}
