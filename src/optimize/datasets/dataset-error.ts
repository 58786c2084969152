/** A data set that cannot be read or does not fit the model; the message names what was expected. */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}
