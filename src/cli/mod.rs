//! The command's parts, beside `main`'s dispatch: [`args`] (the flags; pure), [`render`] (how
//! results are shown; pure), and the shells that run the commands: [`run`] (the agent), [`node`]
//! (`keygen`, `announce`), [`query`] (the commands that ask the running agent) and [`doctor`].

pub mod args;
pub mod doctor;
pub mod node;
pub mod query;
pub mod render;
pub mod run;
