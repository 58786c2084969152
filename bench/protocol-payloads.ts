/** The one request row every protocol in bench/protocols.ts sends: k/255-style values, as a pixel or feature row. */
export function benchRows(width: number): Float32Array {
  const row = new Float32Array(width);
  for (let i = 0; i < width; i++) row[i] = ((i * 37) % 256) / 255;
  return row;
}
