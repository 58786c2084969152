import * as tf from '@tensorflow/tfjs';

export interface LossSettings {
  /** Softening temperature T (> 0). */
  temperature: number;
  /** Weight of the teacher term, in [0, 1]; 1 − alpha weighs the hard-label cross-entropy. */
  alpha: number;
}

/**
 * The standard distillation loss (Hinton et al., 2015), averaged over the batch:
 *   alpha × T² × KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) × CE(softmax(student), labels)
 * The T² factor keeps the soft term's gradients on the same scale as the hard term's when T changes.
 * `labels` may be omitted only when alpha is 1; alpha 0 ignores the teacher (hard labels only).
 */
export function distillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D | undefined,
  labels: tf.Tensor1D | undefined,
  settings: LossSettings,
): tf.Scalar {
  const { temperature: t, alpha } = settings;
  return tf.tidy(() => {
    let loss = tf.scalar(0);
    if (alpha > 0) {
      if (!teacherLogits) throw new Error('distillation loss: alpha > 0 needs teacher logits');
      const teacherLog = tf.logSoftmax(tf.div(teacherLogits, t));
      const studentLog = tf.logSoftmax(tf.div(studentLogits, t));
      const kl = tf.sum(tf.mul(tf.exp(teacherLog), tf.sub(teacherLog, studentLog)), 1);
      loss = tf.add(loss, tf.mul(tf.mean(kl), alpha * t * t));
    }
    if (alpha < 1) {
      if (!labels) throw new Error('distillation loss: alpha < 1 needs labels');
      const classes = studentLogits.shape[1];
      const oneHot = tf.oneHot(labels, classes);
      const ce = tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(studentLogits)), 1));
      loss = tf.add(loss, tf.mul(tf.mean(ce), 1 - alpha));
    }
    return loss as tf.Scalar;
  });
}
